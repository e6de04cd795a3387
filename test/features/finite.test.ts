import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { CanonicalEvent } from '../../src/events/schema.js';
import { FeaturePipeline } from '../../src/features/pipeline.js';
import { FEATURE_COUNT } from '../../src/features/schema.js';
import { instrument, SYM, T0 } from './builders.js';

const account = fc.constantFrom('a', 'b', 'c');
const price = fc.double({ min: 1e-4, max: 1e7, noNaN: true });
const qty = fc.double({ min: 1e-6, max: 1e5, noNaN: true });
const side = fc.constantFrom<'buy' | 'sell'>('buy', 'sell');

/** One event body (ts is assigned in order afterwards). */
const body = fc.oneof(
  price.map((p) => ({ type: 'mark' as const, symbol: SYM, price: p })),
  fc.record({ price, qty, aggressor: side }).map((r) => ({ type: 'trade' as const, symbol: SYM, ...r })),
  fc
    .record({
      bid: price,
      spread: fc.double({ min: 0, max: 1, noNaN: true }),
      bidDepth: qty,
      askDepth: fc.constant(0),
    })
    .map((r) => ({
      type: 'book' as const,
      symbol: SYM,
      bid: r.bid,
      ask: r.bid * (1 + r.spread),
      bidDepth: r.bidDepth,
      askDepth: r.askDepth,
    })),
  fc
    .double({ min: -0.05, max: 0.05, noNaN: true })
    .map((rate) => ({ type: 'funding' as const, symbol: SYM, rate })),
  fc.record({ account, amount: qty }).map((r) => ({ type: 'deposit' as const, ...r })),
  fc.record({ account, amount: qty }).map((r) => ({ type: 'withdrawal' as const, ...r })),
  account.map((a) => ({
    type: 'order' as const,
    account: a,
    orderId: 'o',
    symbol: SYM,
    side: 'buy' as const,
    qty: 1,
    price: null,
    reduceOnly: false,
  })),
  account.map((a) => ({ type: 'cancel' as const, account: a, orderId: 'o' })),
  fc
    .record({
      account,
      side,
      qty,
      price,
      fee: fc.double({ min: -10, max: 10, noNaN: true }),
      taker: fc.boolean(),
    })
    .map((r) => ({
      type: 'fill' as const,
      account: r.account,
      symbol: SYM,
      side: r.side,
      qty: r.qty,
      price: r.price,
      fee: r.fee,
      liquidity: r.taker ? ('taker' as const) : ('maker' as const),
    })),
  fc
    .record({ account, side, qty, price })
    .map((r) => ({ type: 'liquidation' as const, symbol: SYM, fee: 0, ...r })),
);

describe('every feature value is finite', () => {
  it('for arbitrary histories (extreme prices and sizes, negative equity, gaps of days)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(body, fc.integer({ min: 0, max: 2 * 86_400_000 })), {
          minLength: 1,
          maxLength: 60,
        }),
        fc.integer({ min: 0, max: 3 * 86_400_000 }),
        (steps, after) => {
          const p = new FeaturePipeline();
          p.apply(instrument(T0));
          let ts = T0;
          for (const [ev, gap] of steps) {
            ts += gap % 5 === 0 ? 0 : gap;
            p.apply({ ...ev, ts } as CanonicalEvent);
          }
          const snap = p.snapshot(ts + after);
          expect(snap.matrix.length).toBe(snap.rows * FEATURE_COUNT);
          for (let i = 0; i < snap.matrix.length; i++) if (!Number.isFinite(snap.matrix[i]!)) return false;
          return true;
        },
      ),
      { numRuns: 150, seed: 42 },
    );
  });
});
