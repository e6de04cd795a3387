import { describe, expect, it } from 'vitest';
import type { CanonicalEvent } from '../../src/events/schema.js';
import { MarginBook } from '../../src/margin/index.js';
import { windowedRuns } from './windowed-engine.js';

const CAP = 3; // x: account notional / equity

/**
 * Replays the history through a margin book: for every fill of a capped account that increased a position,
 * the account's leverage after it against the cap times its equity before it (the venue sizes on that).
 */
function cappedFills(events: readonly CanonicalEvent[], capped: (account: string, ts: number) => boolean) {
  const book = new MarginBook();
  let fills = 0;
  let worst = 0; // notional after / (cap x equity before)
  for (const e of events) {
    if (e.type === 'fill' && capped(e.account, e.ts)) {
      const before = book.snapshot(e.account, { prices: false });
      const q0 = before?.positions.find((p) => p.symbol === e.symbol)?.qty ?? 0;
      const q1 = q0 + (e.side === 'buy' ? e.qty : -e.qty);
      book.apply(e);
      if (Math.abs(q1) > Math.abs(q0) && before) {
        fills++;
        const after = book.snapshot(e.account, { prices: false })!;
        worst = Math.max(worst, after.notional / (CAP * before.equity));
      }
      continue;
    }
    book.apply(e);
  }
  return { fills, worst };
}

describe('risk engine hook: leverage caps', () => {
  it('an empty cap list leaves the history identical; a capped account never opens beyond its cap', async () => {
    // cap every other account of the book at 3x from minute 200 to minute 900
    const r = await windowedRuns({ reductions: [], leverageCaps: [] }, (ids) => ({
      reductions: [],
      leverageCaps: ids.map((account) => ({ account, maxLeverage: CAP })),
    }));
    expect(r.idle.events).toEqual(r.plain.events);
    expect(r.idle.summary.leverageCap).toEqual({
      cappedAccounts: 0,
      cutOrders: 0,
      cutNotional: 0,
      cancelledOrders: 0,
    });
    expect(r.deterministic).toBe(true);
    const { fills, worst } = cappedFills(r.acted.events, r.inWindow);
    expect(fills).toBeGreaterThan(0); // they still open positions, within the cap
    // sized at the mark before fees: the fill's own slippage and fee may move it by a fraction of a percent
    expect(worst).toBeLessThan(1.01);
    const lc = r.acted.summary.leverageCap;
    expect(lc.cappedAccounts).toBe(40);
    expect(lc.cutOrders).toBeGreaterThan(0);
    expect(lc.cutNotional).toBeGreaterThan(0);
    expect(r.acted.summary.reduceOnly.restrictedAccounts).toBe(0); // a cap is not a restriction
    // without the cap the same accounts open beyond it
    expect(cappedFills(r.plain.events, r.inWindow).worst).toBeGreaterThan(1.5);
  });

  it('a cap of 0 lets a capped account open nothing', async () => {
    const r = await windowedRuns({ reductions: [], leverageCaps: [] }, (ids) => ({
      reductions: [],
      leverageCaps: ids.map((account) => ({ account, maxLeverage: 0 })),
    }));
    const { fills } = cappedFills(r.acted.events, r.inWindow);
    expect(fills).toBe(0);
    expect(r.acted.summary.leverageCap.cutOrders).toBeGreaterThan(0);
    expect(cappedFills(r.plain.events, r.inWindow).fills).toBeGreaterThan(0); // they would have
  });
});
