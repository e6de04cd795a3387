/**
 * The indicators' bounded state: every REBASE_CANDLES candles (from 2K on) fresh indicators are built from the
 * last K, so a series keeps at most 2K candles however long it runs, a restore from them is exact, and what
 * a rebase forgets changes no value beyond float64 noise (checked against the library fed without a break).
 */
import fc from 'fast-check';
import { ATR, BollingerBands, RSI, SD } from 'technicalindicators';
import { describe, expect, it } from 'vitest';
import {
  CandleIndicators,
  FLAT_RSI_PERIODS,
  INPUT_WIDTH,
  REBASE_CANDLES,
} from '../../src/features/indicators.js';
import { FeaturePipeline } from '../../src/features/pipeline.js';
import { Rng } from '../../src/sim/random.js';
import { MIN, T0 } from './builders.js';
import { syntheticHistory } from './synthetic-history.js';

const K = REBASE_CANDLES;
/** the feature pipeline's fast periods */
const periods = { atr: 14, rsi: 14, bb: 20, bbStdDev: 2, vol: 60 };

type Candle = [high: number, low: number, close: number, stepReturn: number];

/**
 * A random walk of `n` candles (first return NaN), with a crash in the middle and, from `flatFrom`, `flatFor`
 * candles whose mark does not move.
 */
function walk(n: number, seed: number, flatFrom = Math.floor(n * 0.7), flatFor = 300): Candle[] {
  const rng = new Rng(seed, 'rebase');
  const out: Candle[] = [];
  let close = 30_000; // USD
  for (let i = 0; i < n; i++) {
    const sigma = i > n / 2 && i < n / 2 + 200 ? 0.01 : 0.001;
    const r = sigma * rng.normal();
    const prev = close;
    if (i >= flatFrom && i < flatFrom + flatFor) {
      out.push([close, close, close, 0]);
      continue;
    }
    close = prev * Math.exp(r);
    const hi = Math.max(prev, close) * (1 + Math.abs(rng.normal()) * sigma);
    const lo = Math.min(prev, close) * (1 - Math.abs(rng.normal()) * sigma);
    out.push([hi, lo, close, i === 0 ? Number.NaN : r]);
  }
  return out;
}

const outputs = (x: CandleIndicators) => [x.atr, x.rsi, x.bbBandwidth, x.returnStd, x.lastClose];

describe('indicator rebasing', () => {
  it('keeps at most 2K candles and stays within float noise of the library fed without a break', () => {
    const n = 6 * K + 357;
    const candles = walk(n, 1);
    const ind = new CandleIndicators(periods, true);
    // the library itself, never rebased
    const atr = new ATR({ period: 14, high: [], low: [], close: [], format: (v) => v });
    const rsi = new RSI({ period: 14, values: [], format: (v) => v });
    const bb = new BollingerBands({ period: 20, stdDev: 2, values: [], format: (v) => v });
    const sd = new SD({ period: 60, values: [], format: (v) => v });
    let worst = 0;
    let compared = 0;
    let most = 0;
    let flatRun = 0;
    let rsiFlat = 0;
    for (const [i, [h, l, c, r]] of candles.entries()) {
      flatRun = i > 0 && c === candles[i - 1]![2] ? flatRun + 1 : 0;
      ind.push(h, l, c, r);
      most = Math.max(most, ind.fedInputs().length / INPUT_WIDTH);
      const libRsi = rsi.nextValue(c);
      if (flatRun >= FLAT_RSI_PERIODS * 14) rsiFlat++;
      const ref = [
        atr.nextValue({ high: h, low: l, close: c }),
        flatRun >= FLAT_RSI_PERIODS * 14 ? 50 : libRsi,
        ((b) => (b ? (b.upper - b.lower) / b.middle : undefined))(bb.nextValue(c)),
        Number.isNaN(r) ? undefined : sd.nextValue(r + 1),
      ];
      if (i < 100) continue;
      const got = outputs(ind);
      for (let k = 0; k < 4; k++) {
        const want = ref[k]!;
        // relative, but in a flat stretch ATR and the bandwidth are 0 plus float noise of 1e-15 either way
        const d = Math.abs(got[k]! - want);
        if (d > 1e-13) worst = Math.max(worst, d / Math.abs(want));
        compared++;
      }
    }
    expect(compared).toBe(4 * (n - 100));
    expect(rsiFlat).toBe(300 - FLAT_RSI_PERIODS * 14 + 1);
    expect(worst).toBeLessThan(1e-10);
    expect(ind.candlesFed).toBe(n);
    // 2K - 1 between pushes: the push that reaches 2K kept rebases and drops the older K
    expect(most).toBe(2 * K - 1);
    expect(ind.inputsFrom).toBe(5 * K);
    expect(ind.fedInputs().length).toBe((n - 5 * K) * INPUT_WIDTH);
  });

  it('restores exactly from the candles it keeps, at any cut, rebases before and after it', async () => {
    const candles = walk(5 * K, 2);
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: candles.length - 1 }), async (cut) => {
        const live = new CandleIndicators(periods, true);
        for (const c of candles.slice(0, cut)) live.push(...c);
        const back = await CandleIndicators.restore(periods, live.fedInputs(), undefined, live.inputsFrom);
        expect(back.candlesFed).toBe(cut);
        for (const c of candles.slice(cut)) {
          live.push(...c);
          back.push(...c);
          expect(outputs(back)).toEqual(outputs(live));
        }
        expect(back.fedInputs()).toEqual(live.fedInputs());
      }),
      { numRuns: 12, seed: 7, examples: [[2 * K - 1], [2 * K], [3 * K + 1]] },
    );
  });

  it('is not exact restored without the last rebase window, and refuses a start that is not one', async () => {
    const candles = walk(4 * K, 3);
    const live = new CandleIndicators(periods, true);
    for (const c of candles.slice(0, 3 * K + 10)) live.push(...c);
    expect(live.inputsFrom).toBe(2 * K);
    expect(live.fedInputs().length).toBe((K + 10) * INPUT_WIDTH);
    // only the candles since the last rebase, without the window it was built from
    const since = live.fedInputs().slice(K * INPUT_WIDTH);
    const short = await CandleIndicators.restore(periods, since, undefined, 0);
    // given as what they are (from candle 3K), they are refused: no series keeps fewer than K past 2K
    await expect(CandleIndicators.restore(periods, since, undefined, 3 * K)).rejects.toThrow(
      /keeps 1024 to 2047/,
    );
    const exact = await CandleIndicators.restore(periods, live.fedInputs(), undefined, live.inputsFrom);
    let differs = 0;
    for (const c of candles.slice(3 * K + 10)) {
      live.push(...c);
      short.push(...c);
      exact.push(...c);
      expect(outputs(exact)).toEqual(outputs(live));
      if (outputs(short).some((v, k) => v !== outputs(live)[k])) differs++;
    }
    // it differs until the next rebase (at 4K) rebuilds both from the same window
    expect(differs).toBeGreaterThan(0);
    expect(outputs(short)).toEqual(outputs(live));
    await expect(CandleIndicators.restore(periods, live.fedInputs(), undefined, 100)).rejects.toThrow(
      /not at a rebase window/,
    );
  });

  it('says RSI 50 after a long unchanged close, where the library alone says 100 once its window saw no move', () => {
    // moves, then a flat mark for longer than a rebase window
    const candles = walk(500 + 3 * K, 4, 500, 3 * K);
    const ind = new CandleIndicators(periods);
    const lib = new RSI({ period: 14, values: [], format: (v) => v });
    const flatAfter = FLAT_RSI_PERIODS * 14;
    for (const [i, c] of candles.entries()) {
      ind.push(...c);
      const libRsi = lib.nextValue(c[2]);
      // candle 500 is the first whose close did not move: the run is i - 499 long
      if (i - 499 < flatAfter) expect(ind.rsi).toBe(libRsi ?? Number.NaN);
      else expect(ind.rsi).toBe(50);
    }
    // the rebased set saw no move in its window: the library's own answer there would be 100
    const fresh = new RSI({ period: 14, values: [], format: (v) => v });
    let last: number | undefined;
    for (const c of candles.slice(-K)) last = fresh.nextValue(c[2]);
    expect(last).toBe(100);
  });

  it('computes the same values whether or not it keeps the candles, and keeps none unless asked', () => {
    const candles = walk(3 * K + 5, 6);
    const kept = new CandleIndicators(periods, true);
    const bare = new CandleIndicators(periods);
    for (const c of candles) {
      kept.push(...c);
      bare.push(...c);
      expect(outputs(bare)).toEqual(outputs(kept));
    }
    expect(() => bare.fedInputs()).toThrow(/not recorded/);
    expect(kept.fedInputs().length).toBe((3 * K + 5 - 2 * K) * INPUT_WIDTH);
  });

  it('bounds a pipeline snapshot of a long history, and its restore gives the same rows', async () => {
    const minutes = 2 * K + 600;
    const events = syntheticHistory({ seed: 5, accounts: 3, minutes, tickMs: 30_000 });
    const cut = events.findIndex((e) => e.ts >= T0 + (minutes - 300) * MIN);
    const live = new FeaturePipeline({ recordForSnapshots: true });
    for (const ev of events.slice(0, cut)) live.apply(ev);
    const saved = live.saveState();
    for (const m of saved.features.markets) {
      expect(m.m1.indicatorInputsFrom).toBe(K);
      expect(m.m1.indicatorInputs.length).toBeLessThanOrEqual(2 * K * INPUT_WIDTH);
    }
    const back = await FeaturePipeline.restore(structuredClone(saved));
    let rows = 0;
    for (const ev of events.slice(cut)) {
      live.apply(ev);
      back.apply(ev);
      if (ev.type === 'mark') {
        for (const a of ['acct-0', 'acct-1', 'acct-2']) {
          expect(Array.from(back.vector(a, ev.ts))).toEqual(Array.from(live.vector(a, ev.ts)));
          rows++;
        }
      }
    }
    expect(rows).toBeGreaterThan(100);
  }, 60_000);
});
