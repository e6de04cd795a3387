/**
 * Fits the synthetic price model to the real hourly data and writes `scenarios/fitted-params.json`, the
 * parameters synthetic scenarios refer to (`"model": "fitted"`). Needs ../shared/data/market (or
 * PREEMPT_MARKET_DATA); run: `npx tsx scenarios/fit-params.ts`. Also checks the minute model: it simulates
 * 60 days of minutes, aggregates them to hours, refits, and prints the comparison (documented in
 * scenarios/README.md).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Bar, sliceBars } from '../src/sim/market/bars.js';
import { type SyntheticMarket, simulateSynthetic } from '../src/sim/paths/garch.js';
import { fitCrashRegime, fitGarchT, fitJumps } from '../src/sim/paths/garch-fit.js';
import {
  absolute,
  autocorrelation,
  correlationMatrix,
  excessKurtosis,
  logReturns,
} from '../src/sim/paths/stats.js';
import { btcHourlyBars, loadMarketBars as load, T2022 } from './market-data.js';

const btc = btcHourlyBars();
const eth = [
  ...sliceBars(load('ethusdt_binance_1h_2017-08_2021-06.csv'), 0, T2022),
  ...load('ethusd_cccagg_1h.csv'),
];
const sets: Record<string, { bars: Bar[]; source: string }> = {
  BTC: { bars: btc, source: 'Bitstamp 1h 2018-05..2021-12 + CCCAGG 1h 2022-01..2026-03' },
  ETH: { bars: eth, source: 'Binance ETHUSDT 1h 2017-08..2021-06 + CCCAGG 1h 2022-01..2026-03' },
  SOL: { bars: load('solusd_cccagg_1h.csv'), source: 'CCCAGG 1h 2022-01..2026-03' },
  DOGE: { bars: load('dogeusd_cccagg_1h.csv'), source: 'CCCAGG 1h 2022-01..2026-03' },
  FTT: { bars: load('fttusd_cccagg_1h.csv'), source: 'CCCAGG 1h 2022-01..2026-03' },
};

const closesOf = (bars: Bar[]): number[] => bars.map((b) => b.close);
// returns only between consecutive hours (the BTC/ETH splices and any gap are skipped)
function hourlyReturns(bars: Bar[]): Float64Array {
  const r: number[] = [];
  for (let i = 1; i < bars.length; i++)
    if (bars[i]!.ts - bars[i - 1]!.ts === 3_600_000) r.push(Math.log(bars[i]!.close / bars[i - 1]!.close));
  return Float64Array.from(r);
}

const instruments: Record<string, unknown> = {};
for (const [base, { bars, source }] of Object.entries(sets)) {
  const r = hourlyReturns(bars);
  const garch = fitGarchT(r, 3_600_000);
  const jumps = fitJumps(r, garch);
  const crash = fitCrashRegime(closesOf(bars));
  instruments[base] = {
    source,
    hours: r.length,
    hourlyExcessKurtosis: excessKurtosis(r),
    garch,
    jumps,
    crash,
    lastClose: bars[bars.length - 1]!.close,
  };
  console.log(base, JSON.stringify(instruments[base]));
}

// correlation over the common CCCAGG period, hour-aligned
const common = ['BTC', 'ETH', 'SOL', 'DOGE', 'FTT'];
const byTs = common.map(
  (b) => new Map(sets[b]!.bars.filter((x) => x.ts >= T2022).map((x) => [x.ts, x.close])),
);
const hours = [...byTs[0]!.keys()].filter((t) => byTs.every((m) => m.has(t) && m.has(t - 3_600_000)));
const series = byTs.map((m) => hours.map((t) => Math.log(m.get(t)! / m.get(t - 3_600_000)!)));
const correlation = correlationMatrix(series);
console.log('correlation', common, JSON.stringify(correlation.map((r) => r.map((v) => +v.toFixed(3)))));

// minute-model calibration (indirect inference): for each instrument, simulate 120 days of minutes with
// the fitted hourly parameters mapped by Nelson's limit, aggregate to hours, refit GARCH-t, and pick the
// (alphaScale, minute nu) whose refit is closest to the real hourly fit (alpha, nu, unconditional variance);
// then scale the crash regime's volatility multiplier so that the simulated crash/calm volatility ratio
// matches the fitted one.
type Fitted = {
  garch: ReturnType<typeof fitGarchT>;
  jumps: ReturnType<typeof fitJumps>;
  crash: ReturnType<typeof fitCrashRegime>;
};
const fitted = (b: string) => instruments[b] as Fitted & Record<string, unknown>;
const uncond = (g: { omega: number; alpha: number; beta: number }) => g.omega / (1 - g.alpha - g.beta);
const days = 300;
const medianAbs = (x: ArrayLike<number>): number => {
  const a = Array.from(x, Math.abs).sort((p, q) => p - q);
  return a[Math.floor(a.length / 2)]!;
};
const check: Record<string, unknown> = {};
for (const base of ['BTC', 'ETH', 'SOL', 'DOGE']) {
  const f = fitted(base);
  const realR = hourlyReturns(sets[base]!.bars);
  const one = (
    alphaScale: number,
    nu: number,
    crashVolMultiplier: number,
    varianceScale = 1,
  ): SyntheticMarket => ({
    instruments: [
      {
        symbol: base,
        startPrice: 100,
        garch: f.garch,
        jumps: f.jumps,
        crashDriftPerHour: f.crash.driftPerHour,
        crashVolMultiplier,
        minute: { alphaScale, nu, varianceScale },
      },
    ],
    correlation: [[1]],
    crashRegime: f.crash,
  });
  let best = { loss: Number.POSITIVE_INFINITY, alphaScale: 1, nu: f.garch.nu, varianceScale: 1 };
  for (const alphaScale of [0.1, 0.15, 0.25, 0.35, 0.5, 0.7, 1])
    for (const nu of [2.2, 2.4, 2.6, 3, 3.5, 4.5]) {
      const sim = simulateSynthetic(one(alphaScale, nu, 1), days * 1440, 11);
      const hourly = logReturns(sim.marks[0]!.filter((_, m) => m % 60 === 0));
      const r = fitGarchT(hourly, 3_600_000);
      // variance is matched afterwards by varianceScale, so only the shape enters the loss
      const loss = ((r.alpha - f.garch.alpha) / f.garch.alpha) ** 2 + ((r.nu - f.garch.nu) / f.garch.nu) ** 2;
      // robust scale: the median absolute hourly return (sample variances of t(2.6) draws are too noisy)
      if (loss < best.loss)
        best = { loss, alphaScale, nu, varianceScale: (medianAbs(realR) / medianAbs(hourly)) ** 2 };
    }
  // crash-regime volatility: measure the ratio the GARCH produces by itself, then scale
  const crashVol = (mult: number) => {
    const m = one(best.alphaScale, best.nu, mult, best.varianceScale);
    m.crashRegime = { entryPerHour: 0.02, meanHours: f.crash.meanHours };
    const sim = simulateSynthetic(m, days * 1440, 12);
    const r = logReturns(sim.marks[0]!);
    const inR = r.filter((_, i) => sim.regime[i + 1] === 1);
    const outR = r.filter((_, i) => sim.regime[i + 1] === 0);
    const sd = (x: Float64Array) => Math.sqrt(x.reduce((s, v) => s + v * v, 0) / x.length);
    return sd(inR) / sd(outR);
  };
  const ratio1 = crashVol(1);
  const crashVolMultiplier = Math.max(1, f.crash.volMultiplier / ratio1);
  const cal = one(best.alphaScale, best.nu, crashVolMultiplier, best.varianceScale);
  const sim = simulateSynthetic(cal, days * 1440, 13);
  const minuteR = logReturns(sim.marks[0]!);
  const hourly = logReturns(sim.marks[0]!.filter((_, m) => m % 60 === 0));
  const refit = fitGarchT(hourly, 3_600_000);
  f.minute = { alphaScale: best.alphaScale, nu: best.nu, varianceScale: best.varianceScale };
  f.crashVolMultiplierMinute = crashVolMultiplier;
  check[base] = {
    minute: f.minute,
    crashVolMultiplierMinute: crashVolMultiplier,
    simulatedMinuteExcessKurtosis: excessKurtosis(minuteR),
    simulatedMinuteAbsAcf1: autocorrelation(absolute(minuteR), 1),
    simulatedMinuteAbsAcf60: autocorrelation(absolute(minuteR), 60),
    simulatedHourlyExcessKurtosis: excessKurtosis(hourly),
    refitOfSimulatedHours: { alpha: refit.alpha, beta: refit.beta, nu: refit.nu, uncondVar: uncond(refit) },
    medianAbsHourly: { simulated: medianAbs(hourly), real: medianAbs(realR) },
    realHourly: {
      alpha: f.garch.alpha,
      beta: f.garch.beta,
      nu: f.garch.nu,
      uncondVar: uncond(f.garch),
      excessKurtosis: f.hourlyExcessKurtosis,
    },
  };
  console.log(base, JSON.stringify(check[base]));
}

const out = {
  generatedBy: 'scenarios/fit-params.ts',
  note: 'GARCH(1,1)-t fitted by maximum likelihood on hourly log returns (variance targeting); jumps = excess of |z|>6 residuals over the t tail; crash regime = episodes whose 6-hour return falls below -10% until it recovers above -3%.',
  instruments,
  correlation: { symbols: common, period: 'CCCAGG hourly 2022-01..2026-03', matrix: correlation },
  minuteModelCheck: check,
};
writeFileSync(join(import.meta.dirname, 'fitted-params.json'), `${JSON.stringify(out, null, 2)}\n`);
