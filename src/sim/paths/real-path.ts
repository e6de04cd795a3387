/**
 * Minute marks for several instruments from real bars: each minute takes the finest bar that covers it
 * (ETH 10-minute bars on the days they exist, hourly elsewhere), each bar is bridged to minute marks
 * (./bridge.ts) with noise correlated across instruments by the Cholesky factor of the correlation of the
 * bars' own log returns, and the instruments' wicks are placed near common times so that they crash together.
 */
import type { Bar } from '../market/bars.js';
import { Rng } from '../random.js';
import { type BarExtremeTimes, bridgeBar, drawExtremeTimes } from './bridge.js';
import { cholesky, correlationMatrix } from './stats.js';

export interface BarSource {
  bars: readonly Bar[];
  /** ms */
  stepMs: number;
}

export interface RealInstrumentInput {
  symbol: string;
  /** finest first: a minute is taken from the first source that covers it */
  sources: readonly BarSource[];
}

export class PathCoverageError extends Error {
  readonly code = 'PATH_COVERAGE';
  constructor(message: string) {
    super(message);
    this.name = 'PathCoverageError';
  }
}

interface Segment {
  bar: Bar;
  /** first minute index */
  start: number;
  /** minutes */
  n: number;
}

function segmentsFor(input: RealInstrumentInput, startMs: number, minutes: number): Segment[] {
  const covered = new Uint8Array(minutes);
  const segs: Segment[] = [];
  for (const src of input.sources) {
    const n = Math.round(src.stepMs / 60_000);
    if (n < 1) throw new PathCoverageError(`${input.symbol}: bars finer than one minute are not supported`);
    for (const bar of src.bars) {
      const start = Math.round((bar.ts - startMs) / 60_000);
      if (start + n <= 0 || start >= minutes) continue;
      let free = true;
      for (let m = Math.max(0, start); m < Math.min(minutes, start + n); m++) if (covered[m]) free = false;
      if (!free) continue;
      for (let m = Math.max(0, start); m < Math.min(minutes, start + n); m++) covered[m] = 1;
      segs.push({ bar, start, n });
    }
  }
  segs.sort((a, b) => a.start - b.start);
  if (!covered[0]) throw new PathCoverageError(`${input.symbol}: no bar covers the scenario's first minute`);
  return segs;
}

/** Correlation of the instruments' hourly log returns over the window (closes sampled every 60 minutes). */
export function hourlyCorrelation(paths: readonly Float64Array[]): number[][] {
  const series = paths.map((p) => {
    const r: number[] = [];
    for (let m = 60; m < p.length; m += 60) r.push(Math.log(p[m]! / p[m - 60]!));
    return r;
  });
  return correlationMatrix(series);
}

function barCloseCorrelation(
  inputs: readonly RealInstrumentInput[],
  startMs: number,
  minutes: number,
): number[][] {
  // a coarse path (each hour's close carried over its minutes) is enough to measure co-movement
  const coarse = inputs.map((inp) => {
    const p = new Float64Array(minutes);
    const segs = segmentsFor(inp, startMs, minutes);
    for (const s of segs)
      for (let m = Math.max(0, s.start); m < Math.min(minutes, s.start + s.n); m++) p[m] = s.bar.open;
    for (let m = 1; m < minutes; m++) if (!(p[m]! > 0)) p[m] = p[m - 1]!;
    return p;
  });
  const c = hourlyCorrelation(coarse);
  // shrink slightly towards the identity so that the factorisation is stable on short windows
  return c.map((row, i) => row.map((v, j) => (i === j ? 1 : 0.95 * (Number.isFinite(v) ? v : 0))));
}

export interface RealPaths {
  /** per instrument, `minutes` marks (USD) */
  marks: Float64Array[];
  /** correlation used for the bridge noise */
  correlation: number[][];
  /** minutes no bar covered (carried forward from the previous mark) */
  gapMinutes: number;
}

export function buildRealPaths(
  inputs: readonly RealInstrumentInput[],
  startMs: number,
  minutes: number,
  seed: number,
): RealPaths {
  const k = inputs.length;
  const correlation = barCloseCorrelation(inputs, startMs, minutes);
  const chol = cholesky(correlation);
  const noiseRng = Rng.stream(seed, 'market/bridge-noise');
  const timeRng = Rng.stream(seed, 'market/bridge-times');
  const noise = inputs.map(() => new Float64Array(minutes + 60));
  const z = new Float64Array(k);
  for (let m = 0; m < minutes + 60; m++) {
    for (let i = 0; i < k; i++) z[i] = noiseRng.normal();
    for (let i = 0; i < k; i++) {
      let v = 0;
      for (let j = 0; j <= i; j++) v += chol[i]![j]! * z[j]!;
      noise[i]![m] = v;
    }
  }
  const hints = new Map<string, BarExtremeTimes>();
  let gapMinutes = 0;
  const marks = inputs.map((inp, i) => {
    const out = new Float64Array(minutes);
    const segs = segmentsFor(inp, startMs, minutes);
    const instRng = Rng.stream(seed, `market/bridge-times/${inp.symbol}`);
    const buf = new Float64Array(Math.max(...segs.map((s) => s.n)));
    for (const s of segs) {
      const key = `${s.start}/${s.n}`;
      let hint = hints.get(key);
      if (!hint) {
        hint = { high: 1 + timeRng.int(Math.max(1, s.n - 1)), low: 1 + timeRng.int(Math.max(1, s.n - 1)) };
        hints.set(key, hint);
      }
      const { open, high, low, close } = s.bar;
      const times = drawExtremeTimes(open, high, low, close, s.n, instRng, hint);
      const shifted = noise[i]!.subarray(Math.max(0, s.start));
      bridgeBar(s.bar, s.n, times, shifted, buf, 0);
      for (let t = 0; t < s.n; t++) {
        const m = s.start + t;
        if (m >= 0 && m < minutes) out[m] = buf[t]!;
      }
    }
    for (let m = 1; m < minutes; m++)
      if (!(out[m]! > 0)) {
        out[m] = out[m - 1]!;
        gapMinutes++;
      }
    return out;
  });
  return { marks, correlation, gapMinutes };
}
