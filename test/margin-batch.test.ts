import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { batchFromBook, evaluateBatch, MarginBook, setBatchMark } from '../src/margin/index.js';
import { bookAfter, opsArb, SYMBOLS } from './margin/arbitraries.js';

describe('evaluateBatch (typed arrays) equals the object path', () => {
  it('bit for bit on random books, with and without the dynamic add-on', () => {
    fc.assert(
      fc.property(
        opsArb,
        fc.boolean(),
        fc.double({ min: 0, max: 0.05, noNaN: true }),
        (ops, dynamic, sigma) => {
          const b = bookAfter(ops, { dynamicMargin: { enabled: dynamic, z: 2.33, horizonHours: 2 } });
          b.setVolatility('BTC-PERP', sigma);
          const batch = batchFromBook(b);
          const out = evaluateBatch(batch);
          batch.accountIds.forEach((id, a) => {
            const s = b.snapshot(id, { prices: false })!;
            expect(Object.is(out.equity[a], s.equity)).toBe(true);
            expect(Object.is(out.mm[a], s.mm)).toBe(true);
            expect(Object.is(out.im[a], s.im)).toBe(true);
            expect(Object.is(out.upnl[a], s.upnl)).toBe(true);
            expect(Object.is(out.marginRatio[a], s.marginRatio)).toBe(true);
            expect(out.liquidatable[a]).toBe(s.equity < s.mm ? 1 : 0);
          });
        },
      ),
      { numRuns: 150 },
    );
  });

  it('follows a new mark set in the batch like the book follows a mark event', () => {
    const b = bookAfter([
      { kind: 'deposit', account: 0, amount: 1_000 },
      { kind: 'trade', buyer: 0, seller: 1, symbol: 0, qty: 3, priceFactor: 1, fee: 0 },
    ]);
    const batch = batchFromBook(b);
    setBatchMark(batch, SYMBOLS[0], 9_500);
    b.apply({ type: 'mark', ts: 99, symbol: SYMBOLS[0], price: 9_500 });
    const out = evaluateBatch(batch);
    const a0 = batch.accountIds.indexOf('a0');
    expect(out.equity[a0]).toBe(b.snapshot('a0')!.equity);
    expect(out.equity[a0]).toBeCloseTo(1_000 - 1_500, 9);
    expect(() => setBatchMark(batch, 'NOPE', 1)).toThrow(/UNDECLARED_INSTRUMENT/);
  });

  it('an empty book gives empty outputs', () => {
    const out = evaluateBatch(batchFromBook(new MarginBook()));
    expect(out.equity.length).toBe(0);
  });
});

describe('liquidation price: a property', () => {
  it('at the liquidation price the account sits at MM, and just beyond it is below MM', () => {
    let checked = 0;
    fc.assert(
      fc.property(opsArb, (ops) => {
        const b = bookAfter(ops);
        for (const id of b.accountIds()) {
          const s = b.snapshot(id)!;
          if (!(s.equity >= s.mm)) continue;
          for (const p of s.positions) {
            if (p.liquidationPrice === null) {
              expect(p.qty).toBeGreaterThan(0); // only a long can be safe down to a mark of 0
              continue;
            }
            const at = (price: number) => {
              const c = b.clone();
              c.apply({ type: 'mark', ts: 1e9, symbol: p.symbol, price });
              const x = c.snapshot(id, { prices: false })!;
              return x.equity - x.mm;
            };
            const adverse = p.qty > 0 ? -1 : 1;
            expect(p.liquidationPrice * adverse).toBeGreaterThanOrEqual(p.mark * adverse - 1e-12 * p.mark);
            const scale = Math.max(1, Math.abs(s.equity), s.notional);
            // just on the safe side of the liquidation price the account is at or above MM (the nudge keeps a
            // price that sits exactly on a tier boundary in the lower tier despite float rounding)
            expect(at(p.liquidationPrice * (1 - adverse * 1e-9))).toBeGreaterThan(-1e-6 * scale);
            expect(at(p.liquidationPrice * (1 + adverse * 1e-6))).toBeLessThan(0);
            // nowhere between the mark and the liquidation price is the account below MM
            for (const f of [0.25, 0.5, 0.75, 0.99]) {
              expect(at(p.mark + (p.liquidationPrice - p.mark) * f)).toBeGreaterThan(-1e-7 * scale);
            }
            checked++;
          }
        }
      }),
      { numRuns: 150 },
    );
    expect(checked).toBeGreaterThan(50);
  });
});
