import { describe, expect, it } from 'vitest';
import type { CanonicalEvent } from '../../src/events/schema.js';
import { MarginBook } from '../../src/margin/index.js';
import { MemorySink, type RiskEngine, simulate } from '../../src/sim/index.js';

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
    const plain = new MemorySink();
    await simulate('flash-crash', { accounts: 80, seed: 11, sink: plain });
    const none = new MemorySink();
    const s0 = await simulate('flash-crash', {
      accounts: 80,
      seed: 11,
      sink: none,
      riskEngine: () => ({ reductions: [], leverageCaps: [] }),
    });
    expect(none.events).toEqual(plain.events);
    expect(s0.leverageCap).toEqual({ cappedAccounts: 0, cutOrders: 0, cutNotional: 0, cancelledOrders: 0 });

    // cap every other account of the book at 3x from minute 200 to minute 900
    const windows = new Map<string, [number, number][]>();
    const engine: RiskEngine = (ctx) => {
      if (ctx.minute < 200 || ctx.minute >= 900) return { reductions: [], leverageCaps: [] };
      const ids = ctx.book.accountIds().filter((_, i) => i % 2 === 0);
      for (const id of ids) {
        const w = windows.get(id) ?? [];
        w.push([ctx.ts, ctx.ts + 60_000]);
        windows.set(id, w);
      }
      return { reductions: [], leverageCaps: ids.map((account) => ({ account, maxLeverage: CAP })) };
    };
    const run = async () => {
      const sink = new MemorySink();
      const summary = await simulate('flash-crash', { accounts: 80, seed: 11, sink, riskEngine: engine });
      return { sink, summary };
    };
    const a = await run();
    windows.clear();
    const b = await run();
    expect(JSON.stringify(b.sink.events)).toBe(JSON.stringify(a.sink.events)); // deterministic
    const capped = (account: string, ts: number) =>
      (windows.get(account) ?? []).some(([from, to]) => ts > from && ts < to);
    const { fills, worst } = cappedFills(b.sink.events, capped);
    expect(fills).toBeGreaterThan(0); // they still open positions, within the cap
    // sized at the mark before fees: the fill's own slippage and fee may move it by a fraction of a percent
    expect(worst).toBeLessThan(1.01);
    const lc = b.summary.leverageCap;
    expect(lc.cappedAccounts).toBe(40);
    expect(lc.cutOrders).toBeGreaterThan(0);
    expect(lc.cutNotional).toBeGreaterThan(0);
    expect(b.summary.reduceOnly.restrictedAccounts).toBe(0); // a cap is not a restriction
    // without the cap the same accounts open beyond it
    expect(cappedFills(plain.events, capped).worst).toBeGreaterThan(1.5);
  });
});
