import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PathRangeIndex } from '../../src/sim/market/first-passage.js';
import { bridgeBar, drawExtremeTimes } from '../../src/sim/paths/bridge.js';
import { fittedFor } from '../../src/sim/paths/fitted-params.js';
import { type SyntheticMarket, simulateSynthetic } from '../../src/sim/paths/garch.js';
import { fitGarchT } from '../../src/sim/paths/garch-fit.js';
import {
  absolute,
  autocorrelation,
  cholesky,
  correlationMatrix,
  excessKurtosis,
  logReturns,
} from '../../src/sim/paths/stats.js';
import { Rng } from '../../src/sim/random.js';

describe('PRNG streams', () => {
  it('a stream is reproducible and independent of other streams', () => {
    const a = Rng.stream(7, 'trader/1/decisions');
    const b = Rng.stream(7, 'trader/1/decisions');
    const other = Rng.stream(7, 'trader/2/decisions');
    for (let i = 0; i < 50; i++) other.next(); // another consumer drawing does not move stream a
    const xs = Array.from({ length: 20 }, () => a.next());
    expect(Array.from({ length: 20 }, () => b.next())).toEqual(xs);
    expect(Rng.stream(8, 'trader/1/decisions').next()).not.toBe(xs[0]);
  });

  it('draws have the moments they claim', () => {
    const r = Rng.stream(1, 'moments');
    const n = 100_000;
    const t = Array.from({ length: n }, () => r.studentTUnit(5));
    const mean = t.reduce((s, x) => s + x, 0) / n;
    const v = t.reduce((s, x) => s + (x - mean) ** 2, 0) / n;
    expect(Math.abs(mean)).toBeLessThan(0.02);
    expect(v).toBeGreaterThan(0.9);
    expect(v).toBeLessThan(1.1);
  });
});

describe('Brownian bridge through an OHLC bar', () => {
  it('touches the high and the low exactly, opens at the open and never leaves the range', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 10_000 }), fc.integer({ min: 3, max: 60 }), (seed, n) => {
        const r = Rng.stream(seed, 'bridge');
        const open = 100 * (1 + r.uniform(-0.02, 0.02));
        const close = 100 * (1 + r.uniform(-0.02, 0.02));
        const bar = {
          open,
          close,
          high: Math.max(open, close) * (1 + r.uniform(0, 0.03)),
          low: Math.min(open, close) * (1 - r.uniform(0, 0.03)),
        };
        const times = drawExtremeTimes(bar.open, bar.high, bar.low, bar.close, n, r);
        const noise = Array.from({ length: n + 1 }, () => r.normal());
        const out = new Float64Array(n);
        bridgeBar(bar, n, times, noise, out, 0);
        expect(Math.max(...out)).toBe(bar.high);
        expect(Math.min(...out)).toBe(bar.low);
        if (times.high !== 0 && times.low !== 0) expect(out[0]).toBe(bar.open);
        for (const p of out) expect(p > 0).toBe(true);
      }),
      { numRuns: 200 },
    );
  });
});

describe('GARCH(1,1)-t', () => {
  it('the maximum-likelihood fit recovers known hourly parameters', () => {
    const r = Rng.stream(3, 'garch-recovery');
    const truth = { omega: 2e-6, alpha: 0.08, beta: 0.9, nu: 5 };
    const n = 20_000;
    const ret = new Float64Array(n);
    let h = truth.omega / (1 - truth.alpha - truth.beta);
    let e2 = h;
    for (let t = 0; t < n; t++) {
      h = truth.omega + truth.alpha * e2 + truth.beta * h;
      ret[t] = Math.sqrt(h) * r.studentTUnit(truth.nu);
      e2 = ret[t]! ** 2;
    }
    const fit = fitGarchT(ret, 3_600_000);
    expect(fit.alpha).toBeGreaterThan(0.05);
    expect(fit.alpha).toBeLessThan(0.11);
    expect(fit.alpha + fit.beta).toBeGreaterThan(0.95);
    expect(fit.alpha + fit.beta).toBeLessThan(0.995);
    expect(fit.nu).toBeGreaterThan(3.5);
    expect(fit.nu).toBeLessThan(7.5);
  });

  it('synthetic minute paths have fat tails and volatility clustering, and move together as fitted', () => {
    const btc = fittedFor('BTC')!;
    const eth = fittedFor('ETH')!;
    const inst = (symbol: string, f: typeof btc, startPrice: number) => ({
      symbol,
      startPrice,
      garch: f.garch,
      jumps: f.jumps,
      crashDriftPerHour: f.crash.driftPerHour,
      crashVolMultiplier: f.crashVolMultiplierMinute ?? f.crash.volMultiplier,
      ...(f.minute ? { minute: f.minute } : {}),
    });
    const market: SyntheticMarket = {
      instruments: [inst('BTC-PERP', btc, 40_000), inst('ETH-PERP', eth, 2_000)],
      correlation: [
        [1, 0.84],
        [0.84, 1],
      ],
      crashRegime: btc.crash,
    };
    const sim = simulateSynthetic(market, 30 * 1440, 5);
    const r = logReturns(sim.marks[0]!);
    expect(excessKurtosis(r)).toBeGreaterThan(3);
    const abs = absolute(r);
    const bound = 3 / Math.sqrt(r.length);
    for (const lag of [1, 5, 30, 60]) expect(autocorrelation(abs, lag)).toBeGreaterThan(bound);
    // raw returns are (nearly) uncorrelated while their sizes are not
    expect(Math.abs(autocorrelation(r, 1))).toBeLessThan(autocorrelation(abs, 1));
    const hourly = sim.marks.map((p) => logReturns(p.filter((_, m) => m % 60 === 0)));
    const c = correlationMatrix(hourly)[0]![1]!;
    expect(c).toBeGreaterThan(0.7);
    expect(c).toBeLessThan(0.95);
  });

  it('Cholesky reproduces its matrix and refuses one that is not positive definite', () => {
    const m = [
      [1, 0.8, 0.3],
      [0.8, 1, 0.4],
      [0.3, 0.4, 1],
    ];
    const l = cholesky(m);
    for (let i = 0; i < 3; i++)
      for (let j = 0; j < 3; j++)
        expect(l[i]!.reduce((s, v, k) => s + v * l[j]![k]!, 0)).toBeCloseTo(m[i]![j]!, 12);
    expect(() =>
      cholesky([
        [1, 2],
        [2, 1],
      ]),
    ).toThrow(/not positive definite/);
  });
});

describe('first exit of a path from a band', () => {
  it('equals the brute-force answer', () => {
    fc.assert(
      fc.property(
        fc.array(fc.double({ min: 90, max: 110, noNaN: true }), { minLength: 1, maxLength: 300 }),
        fc.nat(),
        fc.double({ min: 0, max: 0.1, noNaN: true }),
        (xs, fromRaw, r) => {
          const path = Float64Array.from(xs);
          const from = fromRaw % path.length;
          const lo = 100 * (1 - r);
          const hi = 100 * (1 + r);
          let brute = path.length;
          for (let t = from; t < path.length; t++)
            if (path[t]! < lo || path[t]! > hi) {
              brute = t;
              break;
            }
          expect(new PathRangeIndex(path).firstExit(from, lo, hi)).toBe(brute);
        },
      ),
      { numRuns: 300 },
    );
  });
});
