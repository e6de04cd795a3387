import { describe, expect, it } from 'vitest';
import type { CanonicalEvent } from '../../src/events/schema.js';
import { MemorySink, type RiskEngine, simulate } from '../../src/sim/index.js';

/** |position| per account and symbol after each event, and whether an event increased it */
function increasesOf(
  events: readonly CanonicalEvent[],
  restricted: (account: string, ts: number) => boolean,
) {
  const pos = new Map<string, number>();
  let violations = 0;
  let restrictedFills = 0;
  for (const e of events) {
    if (e.type === 'fill' || e.type === 'liquidation' || e.type === 'adl') {
      const k = `${e.account}/${e.symbol}`;
      const q0 = pos.get(k) ?? 0;
      const q1 = q0 + (e.side === 'buy' ? e.qty : -e.qty);
      pos.set(k, q1);
      if (e.type === 'fill' && restricted(e.account, e.ts)) {
        restrictedFills++;
        if (Math.abs(q1) > Math.abs(q0) + 1e-9) violations++;
      }
    }
  }
  return { violations, restrictedFills };
}

describe('risk engine hook: reduce-only restriction', () => {
  it('an empty restriction leaves the history identical; a restricted account never increases a position', async () => {
    const plain = new MemorySink();
    await simulate('flash-crash', { accounts: 80, seed: 11, sink: plain });
    const none = new MemorySink();
    const s0 = await simulate('flash-crash', {
      accounts: 80,
      seed: 11,
      sink: none,
      riskEngine: () => ({ reductions: [], reduceOnly: [] }),
    });
    expect(none.events).toEqual(plain.events);
    expect(s0.reduceOnly).toEqual({
      restrictedAccounts: 0,
      rejectedOrders: 0,
      rejectedNotional: 0,
      cancelledOrders: 0,
    });

    // restrict every other account of the book from minute 200 to minute 900
    const windows = new Map<string, [number, number][]>();
    const engine: RiskEngine = (ctx) => {
      if (ctx.minute < 200 || ctx.minute >= 900) return { reductions: [], reduceOnly: [] };
      const ids = ctx.book.accountIds().filter((_, i) => i % 2 === 0);
      for (const id of ids) {
        const w = windows.get(id) ?? [];
        w.push([ctx.ts, ctx.ts + 60_000]);
        windows.set(id, w);
      }
      return { reductions: [], reduceOnly: ids };
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
    const restricted = (account: string, ts: number) =>
      (windows.get(account) ?? []).some(([from, to]) => ts > from && ts < to);
    const { violations, restrictedFills } = increasesOf(b.sink.events, restricted);
    expect(restrictedFills).toBeGreaterThan(0); // they still trade, but only to reduce
    expect(violations).toBe(0);
    const ro = b.summary.reduceOnly;
    expect(ro.restrictedAccounts).toBeGreaterThan(0);
    expect(ro.rejectedOrders).toBeGreaterThan(0);
    expect(ro.rejectedNotional).toBeGreaterThan(0);
    // the restriction changed the history
    expect(b.sink.events.length).not.toBe(plain.events.length);
  });
});
