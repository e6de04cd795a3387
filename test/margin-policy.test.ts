import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { CanonicalEvent } from '../src/events/schema.js';
import {
  DEFAULT_POLICY_CONFIG,
  decide,
  MarginBook,
  type PolicyMemory,
  resolvePolicyConfig,
} from '../src/margin/index.js';
import { bookAfter, leveragedBookArb, opsArb, real, SYMBOLS } from './margin/arbitraries.js';
import { deposit, fill, instrument, mark, UNGATED_TIERS } from './margin/fixtures.js';

function book(events: CanonicalEvent[]): MarginBook {
  const b = new MarginBook();
  for (const e of events) b.apply(e);
  return b;
}

/** long 10 BTC @ 10,000 with `dep` USD at mark `m` */
function longTen(dep: number, m: number, liquidationFeeRate = 0.005): MarginBook {
  return book([
    instrument('BTC-PERP', { liquidationFeeRate }),
    mark(10_000),
    deposit('a', dep),
    fill('a', 'buy', 10, 10_000),
    mark(m),
  ]);
}

/** the tiers the cases below were worked out with (pdReduce 0.2, no gate), the rest at the defaults */
const TIERS = resolvePolicyConfig(UNGATED_TIERS);

const decideFor = (b: MarginBook, extra: Partial<Parameters<typeof decide>[0]> = {}, cfg = TIERS) =>
  decide({ margin: b.snapshot('a')!, instruments: b, now: 1_000_000, ...extra }, cfg);

describe('decide: LIQUIDATE', () => {
  it('fires on equity < MM whatever the pd, and a missing or broken pd means rules only', () => {
    const b = book([
      instrument(),
      mark(7900.5),
      deposit('a', 2000),
      fill('a', 'buy', 2, 7901, 6.32),
      mark(6950),
    ]);
    for (const pd of [0, 0.99, Number.NaN, undefined, null, 7]) {
      const { decision } = decideFor(b, { pd });
      expect(decision.action).toBe('LIQUIDATE');
      expect(decision.rule).toBe('equity-below-mm');
      expect(decision.rulesOnly).toBe(!(pd === 0 || pd === 0.99));
      expect(decision.orders).toEqual([{ symbol: 'BTC-PERP', side: 'sell', qty: 2, notional: 13_900 }]);
    }
  });

  it('closes a large position in 20% steps until equity >= 1.1 x MM', () => {
    // equity 500, MM 905; each step sells 2 (notional 18,100, fee 18.10): after 3 steps equity 445.70
    // and MM 4 * 9050 * 0.01 = 362, 1.1 x 362 = 398.2 <= 445.70
    const { decision } = decideFor(longTen(10_000, 9_050, 0.001));
    expect(decision.action).toBe('LIQUIDATE');
    expect(decision.orders).toHaveLength(1);
    expect(decision.orders[0]!.side).toBe('sell');
    expect(decision.orders[0]!.qty).toBeCloseTo(6, 12);
    expect(decision.reasons[0]!.values).toMatchObject({ steps: 3, full: false });
    expect(decision.equityAfter).toBeCloseTo(500 - 3 * 18.1, 9);
    expect(decision.mmAfter).toBeCloseTo(362, 9);
  });

  it('closes a small position whole', () => {
    const cfg = resolvePolicyConfig({ ...UNGATED_TIERS, smallPositionNotional: 100_000 });
    const { decision } = decideFor(longTen(10_000, 9_050, 0.001), {}, cfg);
    expect(decision.orders[0]!.qty).toBe(10);
  });
});

describe('decide: WATCH, HEALTHY and hysteresis', () => {
  const healthy = () => longTen(50_000, 10_000); // ratio 50

  it('pd tiers with hysteresis', () => {
    const b = healthy();
    const low = decideFor(b, { pd: 0.01 });
    expect(low.decision.action).toBe('HEALTHY');
    const watch = decideFor(b, { pd: 0.1, memory: low.memory });
    expect(watch.decision.action).toBe('WATCH');
    expect(watch.decision.rule).toBe('pd-watch-tier');
    expect(watch.memory.pdLevel).toBe(1);
    // 0.03 is below pdWatch (0.05) but not below 0.05 - 0.03: still WATCH
    const hold = decideFor(b, { pd: 0.03, memory: watch.memory });
    expect(hold.decision.action).toBe('WATCH');
    expect(hold.memory.since).toBe(watch.memory.since);
    const out = decideFor(b, { pd: 0.015, memory: hold.memory });
    expect(out.decision.action).toBe('HEALTHY');
  });

  it('margin-ratio watch enters below 1.5 and leaves only above 1.7', () => {
    // long 10 @ 10,000 with 2,600 USD: at 9,900 equity 1,600, MM 990 (ratio 1.62)
    const near = longTen(2_600, 9_900);
    expect(decideFor(near).decision.action).toBe('HEALTHY'); // never entered
    const low = longTen(2_400, 9_900); // ratio 1.41
    const entered = decideFor(low);
    expect(entered.decision.action).toBe('WATCH');
    expect(entered.decision.rule).toBe('margin-ratio-watch');
    expect(decideFor(near, { memory: entered.memory }).decision.action).toBe('WATCH');
    const far = longTen(2_800, 9_900); // ratio 1.82
    expect(decideFor(far, { memory: entered.memory }).decision.action).toBe('HEALTHY');
  });

  it('without a usable pd, a healthy account is HEALTHY and says rules only', () => {
    const { decision } = decideFor(healthy(), { pd: Number.NaN });
    expect(decision.action).toBe('HEALTHY');
    expect(decision.rulesOnly).toBe(true);
    expect(decision.reasons.map((r) => r.rule)).toContain('rules-only');
  });
});

describe('decide: REDUCE', () => {
  // long 10 @ 10,000, 3,000 USD: ratio 3, but a 3-sigma (3%) move costs 3,000
  const risky = () => longTen(3_000, 10_000);
  const sigma1h = { 'BTC-PERP': 0.01 };
  // the sizing the numbers below were worked out with (pd scaling to 0.5, 10% of depth, 25% per interval)
  const sizing = resolvePolicyConfig({
    ...UNGATED_TIERS,
    pdFull: 0.5,
    depthShare: 0.1,
    maxReduceFractionPerInterval: 0.25,
  });

  it('reduces toward surviving k sigma, scaled by pd, with the reasons and numbers', () => {
    const full = decideFor(risky(), { pd: 0.6, sigma1h }, sizing);
    expect(full.decision.action).toBe('REDUCE');
    expect(full.decision.rule).toBe('pd-reduce-tier');
    const v = full.decision.reasons[0]!.values;
    expect(v.targetFraction as number).toBeGreaterThan(0);
    expect(v.pdScale).toBe(1);
    const half = decideFor(risky(), { pd: 0.25, sigma1h }, sizing);
    expect(half.decision.reasons[0]!.values.pdScale).toBeCloseTo(0.5, 12);
    expect(half.decision.orders[0]!.qty).toBeCloseTo(full.decision.orders[0]!.qty / 2, 9);
    expect(full.decision.orders[0]).toMatchObject({ symbol: 'BTC-PERP', side: 'sell' });
    expect(full.decision.equityAfter).toBeGreaterThanOrEqual(full.decision.mmAfter);
  });

  it('caps the order at a share of the visible depth, then cools down, then is capped per interval', () => {
    const b = risky();
    const depth = { 'BTC-PERP': { bidDepth: 8, askDepth: 100 } };
    const first = decideFor(b, { pd: 0.9, sigma1h, depth, now: 0 }, sizing);
    expect(first.decision.action).toBe('REDUCE');
    expect(first.decision.orders[0]!.qty).toBeCloseTo(0.8, 12); // 10% of 8
    expect(first.decision.reasons[0]!.values.cappedBy).toContain('depth:BTC-PERP');
    const cooling = decideFor(b, { pd: 0.9, sigma1h, depth, now: 30_000, memory: first.memory }, sizing);
    expect(cooling.decision.action).toBe('WATCH');
    expect(cooling.decision.rule).toBe('cooldown');
    expect(cooling.decision.orders).toEqual([]);
    // interval cap: 25% of 100,000 per 5 minutes; without depth caps the target exceeds it
    const cfg = resolvePolicyConfig({ ...sizing, cooldownMs: 0, kSigma: 6 });
    let memory: PolicyMemory | undefined;
    let reduced = 0;
    for (let t = 0; t < 4; t++) {
      const r = decideFor(b, { pd: 1, sigma1h, now: t * 1000, memory }, cfg);
      memory = r.memory;
      reduced += r.decision.orders.reduce((a, o) => a + o.notional, 0);
    }
    expect(reduced).toBeCloseTo(25_000, 6);
  });

  it('with a margin-ratio gate, the reduce tier arms only below it and, once armed, stays on pd alone', () => {
    const gated = resolvePolicyConfig({ ...sizing, reduceGateMarginRatio: 2.5 });
    // ratio 3 (risky) is not below the gate: a pd in the reduce tier only watches, and nothing is restricted
    const far = decideFor(risky(), { pd: 0.9, sigma1h }, gated);
    expect(far.decision.action).toBe('WATCH');
    expect(far.decision.rule).toBe('pd-watch-tier');
    expect(far.decision.reasons[0]!.text).toContain('not below the gate 2.5');
    expect(far.memory.pdLevel).toBe(1);
    expect(far.decision.reduceOnly).toBe(false);
    // the same account without the gate is reduced
    expect(decideFor(risky(), { pd: 0.9, sigma1h }, sizing).decision.action).toBe('REDUCE');
    // ratio 2.4 (long 10 @ 10,000, 2,400 USD): the gate is open, the tier arms and reduces
    const near = decideFor(longTen(2_400, 10_000), { pd: 0.9, sigma1h, memory: far.memory }, gated);
    expect(near.decision.action).toBe('REDUCE');
    expect(near.memory.pdLevel).toBe(2);
    expect(near.decision.reduceOnly).toBe(true);
    // back at ratio 3 with the pd still high: the armed tier holds (the gate only arms it)
    const after = decideFor(risky(), { pd: 0.9, sigma1h, memory: near.memory, now: 2_000_000 }, gated);
    expect(after.memory.pdLevel).toBe(2);
    expect(after.decision.reduceOnly).toBe(true);
    // and it is left on pd alone, below pdReduce - pdHysteresis
    const left = decideFor(risky(), { pd: 0.1, sigma1h, memory: after.memory, now: 2_100_000 }, gated);
    expect(left.memory.pdLevel).toBe(1);
    expect(left.decision.reduceOnly).toBe(false);
  });

  it('with reduceOnlyMarginRatio, restricts an armed account only while equity / MM is below it', () => {
    const cfg = resolvePolicyConfig({ ...sizing, reduceOnlyMarginRatio: 2.5 });
    // ratio 2.4: armed and below the restriction level: reduce-only
    const near = decideFor(longTen(2_400, 10_000), { pd: 0.9, sigma1h }, cfg);
    expect(near.memory.pdLevel).toBe(2);
    expect(near.decision.reduceOnly).toBe(true);
    expect(near.decision.reasons.map((r) => r.rule)).toContain('reduce-only');
    // ratio 3, still armed (pd 0.9): the tier keeps reducing, the account may trade again
    const recovered = decideFor(risky(), { pd: 0.9, sigma1h, memory: near.memory, now: 2_000_000 }, cfg);
    expect(recovered.memory.pdLevel).toBe(2);
    expect(recovered.decision.action).toBe('REDUCE');
    expect(recovered.decision.reduceOnly).toBe(false);
    expect(recovered.decision.reasons.map((r) => r.rule)).not.toContain('reduce-only');
    // 0 (the default) restricts whenever the tier is armed
    expect(decideFor(risky(), { pd: 0.9, sigma1h }, sizing).decision.reduceOnly).toBe(true);
  });

  it('refuses a hysteresis that would keep an armed reduce tier forever', () => {
    expect(() => resolvePolicyConfig({ pdReduce: 0.02, pdWatch: 0.01, pdHysteresis: 0.03 })).toThrow(
      /pdHysteresis must be < pdReduce/,
    );
    expect(resolvePolicyConfig({ pdReduce: 0.02, pdWatch: 0.01, pdHysteresis: 0.003 }).pdReduce).toBe(0.02);
  });

  it('an account that already survives the k-sigma move is watched, not reduced', () => {
    const { decision } = decideFor(longTen(50_000, 10_000), { pd: 0.9, sigma1h });
    expect(decision.action).toBe('WATCH');
    expect(decision.orders).toEqual([]);
    expect(decision.reasons[0]!.values.targetFraction).toBe(0);
  });
});

const pdArb = fc.oneof(
  fc.double({ min: 0, max: 1, noNaN: true }),
  fc.constantFrom(Number.NaN, undefined, null, -0.5, 1.5, Number.POSITIVE_INFINITY),
);
const memoryArb: fc.Arbitrary<PolicyMemory | undefined> = fc.option(
  fc.record({
    action: fc.constantFrom('LIQUIDATE', 'REDUCE', 'WATCH', 'HEALTHY'),
    since: fc.integer({ min: 0, max: 1e6 }),
    pdLevel: fc.constantFrom(0, 1, 2),
    marginWatch: fc.boolean(),
    lastReduceAt: fc.option(fc.integer({ min: 0, max: 1e6 })),
    intervalStart: fc.option(fc.integer({ min: 0, max: 1e6 })),
    intervalBaseNotional: fc.double({ min: 0, max: 1e6, noNaN: true }),
    intervalReducedNotional: fc.double({ min: 0, max: 1e6, noNaN: true }),
  }),
  { nil: undefined },
);
const sigmaArb = fc.record({ 'BTC-PERP': real(0, 0.05), 'ETH-PERP': real(0, 0.05) });
const depthArb = fc.option(
  fc.dictionary(
    fc.constantFrom(...SYMBOLS),
    fc.record({
      bidDepth: real(0, 2_000),
      askDepth: real(0, 2_000),
    }),
  ),
  { nil: undefined },
);

describe('decide: properties', () => {
  it('LIQUIDATE iff equity < MM, whatever the pd and the memory', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          leveragedBookArb,
          opsArb.map((ops) => bookAfter(ops)),
        ),
        pdArb,
        memoryArb,
        sigmaArb,
        (b, pd, memory, sigma1h) => {
          for (const id of b.accountIds()) {
            const margin = b.snapshot(id)!;
            const { decision } = decide({ margin, instruments: b, pd, memory, sigma1h, now: 2e6 });
            expect(decision.action === 'LIQUIDATE').toBe(margin.equity < margin.mm);
          }
        },
      ),
      { numRuns: 200 },
    );
  });

  it('a reduction never increases exposure and never takes the account below MM (filled at the mark)', () => {
    const cfg = resolvePolicyConfig({ pdReduce: 0.05, pdWatch: 0.01 });
    let reductions = 0;
    fc.assert(
      fc.property(
        fc.oneof(
          leveragedBookArb,
          opsArb.map((ops) => bookAfter(ops)),
        ),
        fc.double({ min: 0.05, max: 1, noNaN: true }),
        memoryArb,
        sigmaArb,
        depthArb,
        (b, pd, memory, sigma1h, depth) => {
          for (const id of b.accountIds()) {
            const margin = b.snapshot(id);
            if (!margin) continue;
            const { decision } = decide(
              { margin, instruments: b, pd, memory, sigma1h, depth, now: 2e6 },
              cfg,
            );
            if (decision.action !== 'REDUCE') continue;
            reductions++;
            const after = b.clone();
            for (const o of decision.orders) {
              after.apply({
                type: 'fill',
                ts: 2e6,
                account: id,
                symbol: o.symbol,
                side: o.side,
                qty: o.qty,
                price: b.markOf(o.symbol)!,
                fee: o.notional * cfg.reduceFeeRate,
                liquidity: 'taker',
              });
            }
            const s = after.snapshot(id)!;
            expect(s.equity).toBeGreaterThanOrEqual(s.mm);
            expect(s.notional).toBeLessThanOrEqual(margin.notional * (1 + 1e-12));
            for (const p of margin.positions) {
              const q = s.positions.find((x) => x.symbol === p.symbol)?.qty ?? 0;
              expect(Math.abs(q)).toBeLessThanOrEqual(Math.abs(p.qty));
              expect(q === 0 || Math.sign(q) === Math.sign(p.qty)).toBe(true);
            }
          }
        },
      ),
      { numRuns: 200 },
    );
    expect(reductions).toBeGreaterThan(10);
  });

  it('a partial liquidation plan restores the buffer; otherwise it closes everything', () => {
    fc.assert(
      fc.property(opsArb, (ops) => {
        const b = bookAfter(ops);
        for (const id of b.accountIds()) {
          const margin = b.snapshot(id)!;
          const { decision } = decide({ margin, instruments: b, now: 0 });
          if (decision.action !== 'LIQUIDATE') continue;
          const closedAll =
            decision.orders.length === margin.positions.length &&
            decision.orders.every(
              (o) => o.qty === Math.abs(margin.positions.find((p) => p.symbol === o.symbol)!.qty),
            );
          if (!closedAll)
            expect(decision.equityAfter).toBeGreaterThanOrEqual(
              decision.mmAfter * (1 + DEFAULT_POLICY_CONFIG.liquidationBuffer),
            );
          for (const o of decision.orders) {
            const p = margin.positions.find((x) => x.symbol === o.symbol)!;
            expect(o.side).toBe(p.qty > 0 ? 'sell' : 'buy');
            expect(o.qty).toBeLessThanOrEqual(Math.abs(p.qty));
          }
        }
      }),
      { numRuns: 200 },
    );
  });
});
