import { describe, expect, it } from 'vitest';
import { emptyStats, readEventsFile } from '../src/events/reader.js';
import type { CanonicalEvent } from '../src/events/schema.js';
import { cashFromBreakdown, MarginBook, MarginRuleError } from '../src/margin/index.js';
import { deposit, fill, funding, instrument, mark } from './margin/fixtures.js';

const SPEC_EXAMPLE = new URL('./fixtures/spec-example.jsonl', import.meta.url).pathname;

function bookWith(events: CanonicalEvent[], opts?: ConstructorParameters<typeof MarginBook>[0]): MarginBook {
  const b = new MarginBook(opts);
  for (const e of events) b.apply(e);
  return b;
}

function expectRejected(b: MarginBook, ev: CanonicalEvent, code: string): void {
  const before = JSON.stringify(b.toJSON());
  const funds = b.venueFunds();
  let thrown: unknown;
  try {
    b.apply(ev);
  } catch (e) {
    thrown = e;
  }
  expect(thrown).toBeInstanceOf(MarginRuleError);
  expect((thrown as MarginRuleError).code).toBe(code);
  expect(JSON.stringify(b.toJSON())).toBe(before);
  expect(b.venueFunds()).toEqual(funds);
}

describe('MarginBook: the spec example', () => {
  it('equity 91.68 < MM 139 at the mark 6950, cash 2.28 after the liquidation at 6940', async () => {
    const b = new MarginBook();
    let beforeLiq: ReturnType<MarginBook['snapshot']>;
    const stats = emptyStats();
    for await (const { event } of readEventsFile(SPEC_EXAMPLE, stats)) {
      if (event.type === 'liquidation') beforeLiq = b.snapshot('a-17');
      b.apply(event);
    }
    expect(stats.valid).toBe(7);
    expect(beforeLiq!.equity).toBeCloseTo(91.68, 9);
    expect(beforeLiq!.mm).toBeCloseTo(139, 9);
    expect(beforeLiq!.equity < beforeLiq!.mm).toBe(true);
    expect(beforeLiq!.positions[0]).toMatchObject({ qty: 2, avgEntry: 7901, mark: 6950, tierIndex: 0 });
    const after = b.snapshot('a-17')!;
    expect(after.cash).toBeCloseTo(2.28, 9);
    expect(after.positions).toEqual([]);
    expect(after.marginRatio).toBe(Number.POSITIVE_INFINITY);
    expect(after.cashBreakdown).toMatchObject({ deposits: 2000, realisedPnl: -1922, liquidationFees: 69.4 });
    expect(after.cashBreakdown.fees).toBeCloseTo(6.32 + 69.4, 9);
    expect(cashFromBreakdown(after.cashBreakdown)).toBeCloseTo(after.cash, 9);
    expect(b.venueFunds()).toMatchObject({ insuranceFund: 69.4, feesCollected: 6.32, socialisedLoss: 0 });
  });
});

describe('MarginBook: tiers and requirements', () => {
  const at = (qty: number, price: number) =>
    bookWith([instrument(), mark(price), deposit('a', 1e6), fill('a', 'buy', qty, price)]).snapshot('a')!;

  it('picks the first tier whose maxNotional >= notional (bound inclusive, null unbounded)', () => {
    expect(at(50, 5000).positions[0]!.tierIndex).toBe(0); // 250,000 exactly: tier 0
    const mid = at(100, 5000); // 500,000: tier 1
    expect(mid.positions[0]).toMatchObject({ tierIndex: 1, mmr: 0.025, imr: 0.05 });
    expect(mid.mm).toBeCloseTo(12_500, 9);
    expect(mid.im).toBeCloseTo(25_000, 9);
    const big = at(400, 5000); // 2,000,000: unbounded tier
    expect(big.positions[0]!.tierIndex).toBe(2);
    expect(big.mm).toBeCloseTo(100_000, 9);
  });

  it('sums MM and IM across positions (cross margin) and uses contractSize', () => {
    const b = bookWith([
      instrument(),
      instrument('ETH-PERP', { contractSize: 0.1 }),
      mark(10_000),
      mark(2_000, 'ETH-PERP'),
      deposit('a', 10_000),
      fill('a', 'buy', 1, 10_000),
      fill('a', 'sell', 50, 2_100, 0, 'ETH-PERP'),
    ]);
    const s = b.snapshot('a')!;
    expect(s.positions.map((p) => p.notional)).toEqual([10_000, 10_000]); // 50 * 0.1 * 2000
    expect(s.mm).toBeCloseTo(200, 9);
    expect(s.im).toBeCloseTo(400, 9);
    expect(s.upnl).toBeCloseTo((2_100 - 2_000) * 50 * 0.1, 9); // short gains 500
    expect(s.equity).toBeCloseTo(10_500, 9);
    expect(s.marginRatio).toBeCloseTo(10_500 / 200, 9);
    expect(s.freeCollateral).toBeCloseTo(10_500 - 400, 9);
    expect(b.accountsHolding('ETH-PERP')).toEqual(['a']);
  });

  it('a later instrument event replaces the tiers from then on', () => {
    const b = bookWith([instrument(), mark(10_000), deposit('a', 5_000), fill('a', 'buy', 1, 10_000)]);
    expect(b.snapshot('a')!.mm).toBeCloseTo(100, 9);
    b.apply(instrument('BTC-PERP', { ts: 5, tiers: [{ maxNotional: null, imr: 0.2, mmr: 0.1 }] }));
    expect(b.snapshot('a')!.mm).toBeCloseTo(1_000, 9);
    expect(b.instrument('BTC-PERP')!.since).toBe(5);
  });

  it('dynamic margin raises IM with volatility and leaves MM alone; off by default', () => {
    const events = [instrument(), mark(10_000), deposit('a', 5_000), fill('a', 'buy', 1, 10_000)];
    const off = bookWith(events);
    off.setVolatility('BTC-PERP', 0.02);
    expect(off.snapshot('a')!.im).toBeCloseTo(200, 9);
    const on = bookWith(events, { dynamicMargin: { enabled: true, z: 2.33, horizonHours: 4 } });
    on.setVolatility('BTC-PERP', 0.02);
    const s = on.snapshot('a')!;
    const imr = 0.01 + 2.33 * 0.02 * Math.sqrt(4); // 0.1032 > tier imr 0.02
    expect(s.positions[0]!.imr).toBeCloseTo(imr, 12);
    expect(s.im).toBeCloseTo(10_000 * imr, 9);
    expect(s.mm).toBeCloseTo(100, 9);
    // `{ enabled: true }` alone takes the defaults z 2.33 and 1 h (it used to leave them undefined: the term
    // was NaN and the venue's rate applied, dynamic margin silently off)
    const plain = bookWith(events, { dynamicMargin: { enabled: true } });
    plain.setVolatility('BTC-PERP', 0.02);
    expect(plain.snapshot('a')!.positions[0]!.imr).toBeCloseTo(0.01 + 2.33 * 0.02, 12);
    expect(() => bookWith(events, { dynamicMargin: { enabled: true, horizonHours: 0 } })).toThrow(
      /horizonHours/,
    );
    expect(() => bookWith(events, { dynamicMargin: { enabled: true, z: Number.NaN } })).toThrow(
      /dynamicMargin.z/,
    );
  });
});

describe('MarginBook: position arithmetic', () => {
  it('adds at the volume-weighted entry, realises on reduction, and crosses zero at the fill price', () => {
    const b = bookWith([instrument(), mark(100), deposit('a', 1_000)]);
    b.apply(fill('a', 'buy', 1, 100));
    b.apply(fill('a', 'buy', 3, 120));
    expect(b.positionsOf('a')[0]).toMatchObject({ qty: 4, avgEntry: 115 });
    b.apply(fill('a', 'sell', 1, 125)); // realises (125 - 115) * 1
    expect(b.snapshot('a')!.cashBreakdown.realisedPnl).toBeCloseTo(10, 12);
    expect(b.positionsOf('a')[0]).toMatchObject({ qty: 3, avgEntry: 115 });
    b.apply(fill('a', 'sell', 5, 110)); // closes 3 at a loss of 5 each, opens a short of 2 at 110
    expect(b.snapshot('a')!.cashBreakdown.realisedPnl).toBeCloseTo(10 - 15, 12);
    expect(b.positionsOf('a')[0]).toMatchObject({ qty: -2, avgEntry: 110 });
    b.apply(fill('a', 'buy', 1, 100)); // short gains (110 - 100) on the closed contract
    expect(b.snapshot('a')!.cashBreakdown.realisedPnl).toBeCloseTo(-5 + 10, 12);
    b.apply(fill('a', 'buy', 1, 90));
    expect(b.positionsOf('a')).toEqual([]);
    expect(b.accountsHolding('BTC-PERP')).toEqual([]);
    expect(b.snapshot('a')!.cash).toBeCloseTo(1_000 - 5 + 10 + 20, 9);
  });

  it('decimal quantities close exactly (no float dust position)', () => {
    const b = bookWith([instrument(), mark(100), deposit('a', 1_000)]);
    b.apply(fill('a', 'buy', 0.1, 100));
    b.apply(fill('a', 'buy', 0.2, 100));
    b.apply(fill('a', 'sell', 0.3, 101));
    expect(b.positionsOf('a')).toEqual([]);
    expect(b.snapshot('a')!.cashBreakdown.realisedPnl).toBeCloseTo(0.3, 12);
  });

  it('funding: longs pay shorts when rate > 0, shorts pay longs when rate < 0, on qty * cs * mark * rate', () => {
    const b = bookWith([
      instrument('BTC-PERP', { contractSize: 0.01 }),
      mark(20_000),
      deposit('long', 1_000),
      deposit('short', 1_000),
      fill('long', 'buy', 10, 20_000),
      fill('short', 'sell', 10, 20_000),
      mark(21_000),
    ]);
    b.apply(funding(0.001)); // 10 * 0.01 * 21000 * 0.001 = 2.1
    expect(b.snapshot('long')!.cashBreakdown.fundingNet).toBeCloseTo(-2.1, 12);
    expect(b.snapshot('short')!.cashBreakdown.fundingNet).toBeCloseTo(2.1, 12);
    b.apply(funding(-0.002));
    expect(b.snapshot('long')!.cashBreakdown.fundingNet).toBeCloseTo(-2.1 + 4.2, 12);
    expect(b.snapshot('short')!.cash).toBeCloseTo(1_000 + 2.1 - 4.2, 9);
  });

  it('bankruptcy resets cash to 0; the insurance fund covers what it can, the rest is socialised', () => {
    const b = bookWith(
      [
        instrument(),
        mark(10_000),
        deposit('a', 1_000),
        fill('a', 'buy', 1, 10_000),
        mark(8_900),
        {
          type: 'liquidation',
          ts: 5,
          account: 'a',
          symbol: 'BTC-PERP',
          side: 'sell',
          qty: 1,
          price: 8_950,
          fee: 0,
        },
      ],
      { insuranceFund: 30 },
    );
    expect(b.snapshot('a')!.cash).toBeCloseTo(-50, 9);
    b.apply({ type: 'bankruptcy', ts: 6, account: 'a', deficit: 50 });
    const s = b.snapshot('a')!;
    expect(s.cash).toBe(0);
    expect(s.cashBreakdown.bankruptcyCredits).toBeCloseTo(50, 9);
    expect(cashFromBreakdown(s.cashBreakdown)).toBeCloseTo(0, 9);
    expect(b.venueFunds()).toMatchObject({ insuranceFund: 0, insuranceCovered: 30 });
    expect(b.venueFunds().socialisedLoss).toBeCloseTo(20, 9);
  });

  it('an adl event changes the position like a fill, without fee', () => {
    const b = bookWith([instrument(), mark(100), deposit('a', 100), fill('a', 'sell', 2, 100)]);
    b.apply({ type: 'adl', ts: 9, account: 'a', symbol: 'BTC-PERP', side: 'buy', qty: 2, price: 90 });
    expect(b.snapshot('a')!.cash).toBeCloseTo(120, 12);
    expect(b.snapshot('a')!.cashBreakdown.fees).toBe(0);
  });

  it('order, cancel, trade and book events leave the margin state unchanged', () => {
    const b = bookWith([instrument(), mark(100), deposit('a', 100), fill('a', 'buy', 1, 100)]);
    const before = JSON.stringify(b.snapshot('a'));
    b.apply({
      type: 'order',
      ts: 9,
      account: 'a',
      orderId: 'o',
      symbol: 'BTC-PERP',
      side: 'buy',
      qty: 1,
      price: null,
      reduceOnly: false,
    });
    b.apply({ type: 'cancel', ts: 9, account: 'a', orderId: 'o' });
    b.apply({ type: 'trade', ts: 9, symbol: 'BTC-PERP', price: 50, qty: 1, aggressor: 'sell' });
    b.apply({ type: 'book', ts: 9, symbol: 'BTC-PERP', bid: 99, ask: 101, bidDepth: 10, askDepth: 12 });
    expect(JSON.stringify(b.snapshot('a'))).toBe(before);
    expect(b.bookOf('BTC-PERP')).toMatchObject({ bidDepth: 10, askDepth: 12 });
  });
});

describe('MarginBook: rejected events leave the state untouched', () => {
  const base = () => bookWith([instrument(), mark(100), deposit('a', 100), fill('a', 'buy', 1, 100)]);

  it('a fill or mark on an undeclared instrument', () => {
    const b = base();
    expectRejected(b, fill('a', 'buy', 1, 100, 0, 'ETH-PERP'), 'UNDECLARED_INSTRUMENT');
    expectRejected(b, mark(5, 'ETH-PERP'), 'UNDECLARED_INSTRUMENT');
  });

  it('non-finite numbers, and results that would overflow', () => {
    const b = base();
    expectRejected(b, fill('a', 'buy', 1, Number.NaN), 'NON_FINITE');
    expectRejected(b, mark(Number.POSITIVE_INFINITY), 'NON_FINITE');
    expectRejected(b, fill('a', 'sell', 1, 100, Number.NaN), 'NON_FINITE');
    expectRejected(b, fill('a', 'buy', 1e300, 1e300), 'NON_FINITE'); // entry value overflows
  });

  it('out-of-range fields and a bankruptcy of an unknown account', () => {
    const b = base();
    expectRejected(b, fill('a', 'buy', -1, 100), 'INVALID_FIELD');
    expectRejected(b, deposit('a', 0), 'INVALID_FIELD');
    expectRejected(b, { type: 'bankruptcy', ts: 1, account: 'nobody', deficit: 5 }, 'UNKNOWN_ACCOUNT');
    expectRejected(
      b,
      instrument('BTC-PERP', { tiers: [{ maxNotional: null, imr: 0.01, mmr: 0.02 }] }),
      'INVALID_FIELD',
    );
  });
});

describe('MarginBook: liquidation and bankruptcy prices', () => {
  it('the spec example: liquidation at 6973.90, bankruptcy at 6904.16', () => {
    const s = bookWith([
      instrument(),
      mark(6950),
      deposit('a', 2000),
      fill('a', 'buy', 2, 7901, 6.32),
    ]).snapshot('a')!;
    // 1993.68 + (x - 7901) * 2 = 0.02 x  =>  x = 13808.32 / 1.98
    expect(s.positions[0]!.liquidationPrice).toBeCloseTo(13_808.32 / 1.98, 6);
    expect(s.positions[0]!.bankruptcyPrice).toBeCloseTo(6950 - 91.68 / 2, 6);
  });

  it('a short: the price rises to its liquidation price', () => {
    const s = bookWith([instrument(), mark(100), deposit('a', 50), fill('a', 'sell', 10, 100)]).snapshot(
      'a',
    )!;
    // 50 + (100 - x) * 10 = 0.01 * 10 x  =>  x = 1050 / 10.1
    expect(s.positions[0]!.liquidationPrice).toBeCloseTo(1050 / 10.1, 9);
    expect(s.positions[0]!.bankruptcyPrice).toBeCloseTo(105, 9);
  });

  it('uses the tier that applies at the liquidation mark, not the current one', () => {
    // long 60 @ 5000 (notional 300,000: tier 1, mmr 2.5%); at the liquidation price the notional is
    // below 250,000, so tier 0 (mmr 1%) applies: 60000 + (x - 5000) * 60 = 0.01 * 60 x  => x = 240000 / 59.4
    // (tier 1's equation would give x = 240000 / 58.5, whose notional 246,154 is not in tier 1)
    const s = bookWith([instrument(), mark(5000), deposit('a', 60_000), fill('a', 'buy', 60, 5000)]).snapshot(
      'a',
    )!;
    expect(s.positions[0]!.tierIndex).toBe(1);
    const x = 240_000 / 59.4;
    expect(x * 60).toBeLessThan(250_000);
    expect(s.positions[0]!.liquidationPrice).toBeCloseTo(x, 6);
  });

  it('a fully collateralised long has no liquidation price', () => {
    const s = bookWith([instrument(), mark(100), deposit('a', 1_000), fill('a', 'buy', 1, 100)]).snapshot(
      'a',
    )!;
    expect(s.positions[0]!.liquidationPrice).toBeNull();
    expect(s.positions[0]!.bankruptcyPrice).toBeNull();
  });
});
