/**
 * Everything about the market of a scenario that does not depend on the traders, computed up front from
 * the seed: each instrument's minute marks (real bars bridged, or the fitted synthetic model), marks every
 * 10 s in fast minutes (so that liquidations are not decided on one-minute gaps when prices run), its
 * realised volatility (EWMA of minute log returns, half-life 30 minutes) against its long-run reference,
 * the background traded volume per minute, and the funding rate at each settlement (the real BTC history
 * where it covers the time, else a premium model).
 */

import { fittedCorrelation, fittedFor, referenceMinuteSigma } from '../paths/fitted-params.js';
import { type SyntheticInstrument, simulateSynthetic } from '../paths/garch.js';
import { buildRealPaths } from '../paths/real-path.js';
import { Rng } from '../random.js';
import type { LoadedScenario } from '../scenario/load.js';
import { resolveDataPath, ScenarioError } from '../scenario/load.js';
import type { InstrumentConfig } from '../scenario/schema.js';
import { loadBars } from './bars.js';
import { PathRangeIndex } from './first-passage.js';
import { type FundingPoint, fundingAt, loadFundingHistory } from './funding-history.js';
import { roundToTick } from './microstructure.js';

const SIGMA_HALF_LIFE_MIN = 30;
/** marks per minute in a fast minute (every 10 s) */
export const SUBSTEPS = 6;
/** a minute is fast (marked every 10 s) when its volatility is this many times normal */
export const FAST_VOL_RATIO = 2;

export interface SymbolMarket {
  index: number;
  config: InstrumentConfig;
  /** USD, one per minute, on the tick grid */
  marks: Float64Array;
  /** EWMA standard deviation of one-minute log returns */
  sigma: Float64Array;
  /** normal one-minute standard deviation (the fitted long-run level of the base) */
  sigmaRef: number;
  /** contracts of background (non-simulated) volume per minute */
  volume: Float64Array;
  /**
   * marks at SUBSTEPS points per minute (index m * SUBSTEPS + j, j = 0 the minute mark); in a fast minute
   * the points j > 0 bridge to the next minute's mark, otherwise they repeat the minute mark (not emitted)
   */
  fine: Float64Array;
  /** first-exit index over `fine` */
  range: PathRangeIndex;
}

export interface MarketPaths {
  /** epoch ms of minute 0 */
  startMs: number;
  minutes: number;
  symbols: SymbolMarket[];
  /** funding rate per symbol index at a settlement minute, undefined when none is due */
  fundingAt(minute: number): number[] | undefined;
  /** where the funding rates came from, e.g. "history 6 / premium 0" */
  fundingSources: { history: number; premium: number };
  /** correlation of hourly log returns used to tie the instruments together */
  correlation: number[][];
  /** 1 for minutes marked every 10 s (any instrument's volatility above FAST_VOL_RATIO x normal) */
  fast: Uint8Array;
}

/** Sub-minute marks: a Brownian bridge from each fast minute's mark to the next, on the tick grid. */
function finePath(s: Omit<SymbolMarket, 'fine' | 'range'>, fast: Uint8Array, seed: number): Float64Array {
  const rng = Rng.stream(seed, `market/sub-minute/${s.config.symbol}`);
  const n = s.marks.length;
  const fine = new Float64Array(n * SUBSTEPS);
  const step = new Float64Array(SUBSTEPS + 1);
  for (let m = 0; m < n; m++) {
    const a = s.marks[m]!;
    fine[m * SUBSTEPS] = a;
    const b = m + 1 < n ? s.marks[m + 1]! : a;
    if (!fast[m]) {
      for (let j = 1; j < SUBSTEPS; j++) fine[m * SUBSTEPS + j] = a;
      continue;
    }
    const sd = s.sigma[m]! / Math.sqrt(SUBSTEPS);
    let w = 0;
    for (let j = 1; j <= SUBSTEPS; j++) {
      w += sd * rng.normal();
      step[j] = w;
    }
    const lr = Math.log(b / a);
    for (let j = 1; j < SUBSTEPS; j++) {
      const f = j / SUBSTEPS;
      const x = Math.log(a) + f * lr + step[j]! - f * step[SUBSTEPS]!;
      fine[m * SUBSTEPS + j] = Math.max(s.config.tickSize, roundToTick(Math.exp(x), s.config.tickSize));
    }
  }
  return fine;
}

function ewmaSigma(marks: Float64Array, sigmaRef: number): Float64Array {
  const lambda = 0.5 ** (1 / SIGMA_HALF_LIFE_MIN);
  const out = new Float64Array(marks.length);
  let v = sigmaRef * sigmaRef;
  out[0] = sigmaRef;
  for (let m = 1; m < marks.length; m++) {
    const r = Math.log(marks[m]! / marks[m - 1]!);
    v = lambda * v + (1 - lambda) * r * r;
    out[m] = Math.sqrt(v);
  }
  return out;
}

function median(xs: ArrayLike<number>): number {
  const a = Array.from(xs).sort((p, q) => p - q);
  return a[Math.floor(a.length / 2)] ?? 0;
}

function realMarks(loaded: LoadedScenario, startMs: number, minutes: number, seed: number) {
  const { scenario, dir } = loaded;
  const perMinuteVolume: Float64Array[] = [];
  const inputs = scenario.instruments.map((inst) => {
    if (inst.prices.kind !== 'bars') throw new ScenarioError('SCENARIO_INVALID', 'mixed price kinds');
    const sources = inst.prices.files.map((f) => {
      const parsed = loadBars(resolveDataPath(f, dir));
      return { bars: parsed.bars, stepMs: parsed.stepMs };
    });
    // background volume from the coarsest source (the hourly bars), spread evenly over the bar
    const vol = new Float64Array(minutes);
    const coarse = sources[sources.length - 1]!;
    const n = coarse.stepMs / 60_000;
    for (const b of coarse.bars) {
      const s = Math.round((b.ts - startMs) / 60_000);
      for (let k = 0; k < n; k++) if (s + k >= 0 && s + k < minutes) vol[s + k] = b.volume / n;
    }
    perMinuteVolume.push(vol);
    return { symbol: inst.symbol, sources };
  });
  const paths = buildRealPaths(inputs, startMs, minutes, seed);
  return { marks: paths.marks, correlation: paths.correlation, volumes: perMinuteVolume };
}

function syntheticMarks(loaded: LoadedScenario, startMs: number, minutes: number, seed: number) {
  const { scenario } = loaded;
  const insts: SyntheticInstrument[] = scenario.instruments.map((inst) => {
    if (inst.prices.kind !== 'synthetic') throw new ScenarioError('SCENARIO_INVALID', 'mixed price kinds');
    const f = fittedFor(inst.prices.fitted);
    if (!f)
      throw new ScenarioError(
        'SCENARIO_INVALID',
        `${inst.symbol}: no fitted parameters for "${inst.prices.fitted}"`,
      );
    return {
      symbol: inst.symbol,
      startPrice: inst.prices.startPrice,
      garch: f.garch,
      jumps: f.jumps,
      crashDriftPerHour: f.crash.driftPerHour,
      crashVolMultiplier: f.crashVolMultiplierMinute ?? f.crash.volMultiplier,
      ...(f.minute ? { minute: f.minute } : {}),
    };
  });
  const fitted = (i: number): string => (scenario.instruments[i]!.prices as { fitted: string }).fitted;
  const correlation =
    scenario.correlation === 'fitted'
      ? insts.map((_, i) =>
          insts.map((__, j) => (i === j ? 1 : (fittedCorrelation(fitted(i), fitted(j)) ?? 0))),
        )
      : scenario.correlation;
  const btc = fittedFor(fitted(0))!;
  const sim = simulateSynthetic(
    {
      instruments: insts,
      correlation,
      crashRegime: scenario.crashRegime ? btc.crash : { entryPerHour: 0, meanHours: 1 },
      scheduledCrashes: scenario.scheduledCrashes.map((c) => ({
        atMinute: Math.round((Date.parse(c.at) - startMs) / 60_000),
        fallMinutes: c.fallMinutes,
        fallLog: Math.log(1 - c.fall),
        recoveryShare: c.recoveryShare,
        recoveryMinutes: c.recoveryMinutes,
      })),
    },
    minutes,
    seed,
  );
  return { marks: sim.marks, correlation, volumes: undefined };
}

function fundingSchedule(
  loaded: LoadedScenario,
  startMs: number,
  minutes: number,
  symbols: SymbolMarket[],
): Pick<MarketPaths, 'fundingAt' | 'fundingSources'> {
  const cfg = loaded.scenario.funding;
  const history: FundingPoint[] = cfg.file ? loadFundingHistory(resolveDataPath(cfg.file, loaded.dir)) : [];
  const rates = new Map<number, number[]>();
  const sources = { history: 0, premium: 0 };
  const firstSettlement = Math.ceil((startMs + 1) / cfg.intervalMs) * cfg.intervalMs;
  for (let t = firstSettlement; t < startMs + minutes * 60_000; t += cfg.intervalMs) {
    const m = (t - startMs) / 60_000;
    const real = fundingAt(history, t);
    if (real !== undefined) sources.history++;
    else sources.premium++;
    rates.set(
      m,
      symbols.map((s) => {
        // BTC's real rate applies to every instrument (cross-asset funding moves together); without
        // history: base + k * (8 h log return), clamped
        if (real !== undefined) return real;
        const back = Math.max(0, m - cfg.intervalMs / 60_000);
        const r = Math.log(s.marks[m]! / s.marks[back]!);
        const rate = cfg.baseRate + cfg.premiumK * r;
        return Number(Math.max(-cfg.clamp, Math.min(cfg.clamp, rate)).toPrecision(6));
      }),
    );
  }
  return { fundingAt: (m) => rates.get(m), fundingSources: sources };
}

export function buildMarket(loaded: LoadedScenario, seed: number, accounts: number): MarketPaths {
  const { scenario } = loaded;
  const startMs = Date.parse(scenario.start);
  const minutes = Math.round((Date.parse(scenario.end) - startMs) / 60_000);
  const kind = scenario.instruments[0]!.prices.kind;
  const built =
    kind === 'bars'
      ? realMarks(loaded, startMs, minutes, seed)
      : syntheticMarks(loaded, startMs, minutes, seed);
  const base = scenario.instruments.map((config, index) => {
    const raw = built.marks[index]!;
    const marks = raw.map((p) => Math.max(config.tickSize, roundToTick(p, config.tickSize)));
    const sigmaPath = ewmaSigma(marks, 0);
    const sigmaRef = referenceMinuteSigma(config.base) ?? median(sigmaPath.subarray(60));
    const sigma = ewmaSigma(marks, sigmaRef);
    const depthContracts = (scenario.instruments[index]!.depthUsdPerAccount * accounts) / marks[0]!;
    const volume = new Float64Array(minutes);
    const bars = built.volumes?.[index];
    const medBars = bars ? median(bars) : 0;
    for (let m = 0; m < minutes; m++) {
      const rel = bars && medBars > 0 ? bars[m]! / medBars : Math.min(20, sigma[m]! / sigmaRef);
      volume[m] = 0.05 * depthContracts * rel;
    }
    return { index, config, marks, sigma, sigmaRef, volume };
  });
  const fast = new Uint8Array(minutes);
  for (let m = 0; m < minutes; m++)
    fast[m] = base.some((s) => s.sigma[m]! > FAST_VOL_RATIO * s.sigmaRef) ? 1 : 0;
  const symbols: SymbolMarket[] = base.map((s) => {
    const fine = finePath(s, fast, seed);
    return { ...s, fine, range: new PathRangeIndex(fine) };
  });
  return {
    startMs,
    minutes,
    symbols,
    correlation: built.correlation,
    fast,
    ...fundingSchedule(loaded, startMs, minutes, symbols),
  };
}
