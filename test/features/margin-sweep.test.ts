import { describe, expect, it } from 'vitest';
import type { CanonicalEvent } from '../../src/events/schema.js';
import { FeatureState } from '../../src/features/feature-state.js';
import { SLOTS } from '../../src/features/margin-mirror.js';
import { MarginSweep, marginInputs } from '../../src/features/margin-sweep.js';
import { deposit, fill, funding, instrument, MIN, mark, T0 } from './builders.js';
import { syntheticHistory } from './synthetic-history.js';

/** Compare the sweep (mirror + batch evaluator) with the margin core's object path, exactly. */
function expectSweepEqualsBook(state: FeatureState): number {
  const sweep = new MarginSweep();
  const n = state.ids.length;
  state.refreshDirty(); // what the pipeline does before every sweep (funding moved holders' cash)
  sweep.run(marginInputs(state.book, state.symbols), state.mirror, n, null);
  let positions = 0;
  for (let r = 0; r < n; r++) {
    const m = state.book.snapshot(state.ids[r]!);
    if (!m) {
      expect(sweep.known[r]).toBe(0);
      continue;
    }
    expect(sweep.out.equity[r]).toBe(m.equity);
    expect(sweep.out.mm[r]).toBe(m.mm);
    expect(sweep.out.im[r]).toBe(m.im);
    expect(sweep.out.upnl[r]).toBe(m.upnl);
    expect(sweep.out.marginRatio[r]).toBe(m.marginRatio);
    expect(sweep.notional[r]).toBe(m.notional);
    const from = sweep.posStart[r]!;
    expect(sweep.posStart[r + 1]! - from).toBe(m.positions.length);
    m.positions.forEach((p, j) => {
      expect(state.symbols[sweep.posInst[from + j]!]).toBe(p.symbol);
      expect(sweep.posQty[from + j]).toBe(p.qty);
      expect(sweep.posMark[from + j]).toBe(p.mark);
      expect(sweep.posNotional[from + j]).toBe(p.notional);
      if (m.equity >= m.mm) expect(sweep.posLiq[from + j]).toBe(p.liquidationPrice ?? Number.NaN);
      positions++;
    });
  }
  return positions;
}

describe('margin sweep (mirror + the core batch evaluator) equals MarginBook.snapshot', () => {
  it('on a simulated history with funding, liquidations and withdrawals, at several instants', () => {
    const history = syntheticHistory({ seed: 11, accounts: 20, minutes: 130 });
    const state = new FeatureState(undefined, 4);
    let next = 0;
    let checked = 0;
    for (const t of [T0 + 30 * MIN, T0 + 61 * MIN, T0 + 125 * MIN]) {
      while (next < history.length && history[next]!.ts <= t) state.apply(history[next++]!);
      checked += expectSweepEqualsBook(state);
    }
    expect(checked).toBeGreaterThan(20);
    expect(history.some((e) => e.type === 'funding')).toBe(true);
  });

  it(`for an account with more than ${SLOTS} positions (overflow) and after positions close`, () => {
    const symbols = ['A-PERP', 'B-PERP', 'C-PERP', 'D-PERP', 'E-PERP', 'F-PERP'];
    const events: CanonicalEvent[] = [];
    symbols.forEach((s, k) => {
      events.push(instrument(T0, s), mark(T0, 10 + k, s));
    });
    events.push(deposit(T0, 'many', 1000), deposit(T0, 'few', 1000));
    symbols.forEach((s, k) => {
      events.push(fill(T0 + 1, 'many', k % 2 ? 'sell' : 'buy', 5 + k, 10 + k, 'taker', s));
    });
    events.push(fill(T0 + 1, 'few', 'buy', 3, 10, 'taker', 'A-PERP'));
    events.push(mark(T0 + 2, 9, 'A-PERP'), funding(T0 + 3, 0.01, 'A-PERP'));
    const state = new FeatureState(undefined, 4);
    for (const ev of events) state.apply(ev);
    expect(state.mirror.count[state.index.get('many')!]).toBe(6);
    expect(state.mirror.overflow.size).toBe(1);
    expect(expectSweepEqualsBook(state)).toBe(7);
    // close three positions: back into the slots
    for (const k of [0, 2, 4]) state.apply(fill(T0 + 4, 'many', 'sell', 5 + k, 10 + k, 'taker', symbols[k]));
    expect(state.mirror.overflow.size).toBe(0);
    expect(expectSweepEqualsBook(state)).toBe(4);
  });
});
