import { describe, expect, it } from 'vitest';
import type { CanonicalEvent } from '../../src/events/schema.js';
import { windowedRuns } from './windowed-engine.js';

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
    // restrict every other account of the book from minute 200 to minute 900
    const r = await windowedRuns({ reductions: [], reduceOnly: [] }, (ids) => ({
      reductions: [],
      reduceOnly: ids,
    }));
    expect(r.idle.events).toEqual(r.plain.events);
    expect(r.idle.summary.reduceOnly).toEqual({
      restrictedAccounts: 0,
      rejectedOrders: 0,
      rejectedNotional: 0,
      cancelledOrders: 0,
    });
    expect(r.deterministic).toBe(true);
    const { violations, restrictedFills } = increasesOf(r.acted.events, r.inWindow);
    expect(restrictedFills).toBeGreaterThan(0); // they still trade, but only to reduce
    expect(violations).toBe(0);
    const ro = r.acted.summary.reduceOnly;
    expect(ro.restrictedAccounts).toBeGreaterThan(0);
    expect(ro.rejectedOrders).toBeGreaterThan(0);
    expect(ro.rejectedNotional).toBeGreaterThan(0);
    // the restriction changed the history
    expect(r.acted.events.length).not.toBe(r.plain.events.length);
  });
});
