/**
 * Evaluate a trained model, and the baselines stored with it, on other histories: every row of the given
 * histories (each account with a position at each `everyMs` step, labelled by a liquidation within the
 * model's horizon, exactly as training labels its test split) is scored through the serving path, and the
 * held-out metrics, the equal-mass ECE and a reliability table by pd band are reported for each. What a
 * risk team runs before trusting a model on a day it was not trained on, and to watch it drift.
 */
import { z } from 'zod';
import { F } from '../src/features/schema.js';
import { assertCompatible } from '../src/model/artifacts.js';
import { applyCalibrationInPlace, CalibrationSchema } from '../src/model/calibration.js';
import { reliabilityByEdges } from '../src/model/metrics.js';
import { readModelFiles } from '../src/model/model-files.js';
import { type Normalisation, normalise } from '../src/model/normalisation.js';
import { loadScorer } from '../src/model/scorer.js';
import { scoreLogistic1d } from './baselines.js';
import { buildHistoryRows, type HistoryRows } from './dataset.js';
import { evaluate, type Metrics } from './evaluate.js';
import { gather, planSplits, type SplitMatrix, selectRows, splitColumn } from './splits.js';
import { combinedLiquidations, TrainingDataError } from './train.js';

/** pd band edges of the reliability table: the policy's watch (0.01), reduce (0.02) and full (0.2) levels among them */
export const PD_BANDS: readonly number[] = [0, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 1];

export interface PdBand {
  /** pd in [lo, hi) (the last band includes 1) */
  lo: number;
  hi: number;
  rows: number;
  /** mean predicted pd of the band's rows */
  meanPd: number | null;
  /** share of the band's rows liquidated within the horizon */
  observed: number | null;
}

export interface ModelEvaluation {
  model: string;
  files: string[];
  rows: number;
  positives: number;
  /** `model`, then each stored baseline (`margin-rule`, `logistic`) */
  metrics: Record<string, Metrics>;
  reliability: Record<string, PdBand[]>;
  /** length of the periods of `byPeriod`, ms */
  periodMs: number;
  /** calibration over time: per period, the defaults observed beside those each scorer expected */
  byPeriod: PeriodRow[];
  /** with `exclude`: the same metrics on the rows outside the excluded windows */
  outside?: { windows: TimeWindow[]; rows: number; positives: number; metrics: Record<string, Metrics> };
}

/** [fromMs, toMs): snapshot times, epoch ms */
export interface TimeWindow {
  fromMs: number;
  toMs: number;
}

export interface PeriodRow {
  /** start of the period, epoch ms (a multiple of `periodMs`) */
  startMs: number;
  rows: number;
  /** rows liquidated within the horizon (defaults, a count) */
  observed: number;
  /** per scorer: the sum of its pds over the period's rows, the defaults it expected (a count) */
  expected: Record<string, number>;
}

export interface EvaluateModelOptions {
  model: string;
  events: string[];
  /** period of the calibration-over-time table, ms (default 1 h) */
  periodMs?: number;
  /** snapshot-time windows whose rows are left out of a second set of metrics (`outside`) */
  exclude?: TimeWindow[];
  onProgress?: (p: { file: string; events: number }) => void;
}

/** Observed and expected defaults per `periodMs` of snapshot time (periods without rows are left out). */
export function byPeriod(
  ts: Float64Array,
  y: ArrayLike<number>,
  pd: Record<string, ArrayLike<number>>,
  periodMs: number,
): PeriodRow[] {
  if (!(periodMs > 0)) throw new RangeError(`period ${periodMs} ms is not positive`);
  const names = Object.keys(pd);
  const rows = new Map<number, PeriodRow>();
  for (let i = 0; i < ts.length; i++) {
    const start = Math.floor((ts[i] as number) / periodMs) * periodMs;
    let r = rows.get(start);
    if (!r) {
      r = { startMs: start, rows: 0, observed: 0, expected: Object.fromEntries(names.map((n) => [n, 0])) };
      rows.set(start, r);
    }
    r.rows++;
    r.observed += y[i] as number;
    for (const n of names) (r.expected[n] as number) += (pd[n] as ArrayLike<number>)[i] as number;
  }
  return [...rows.values()].sort((a, b) => a.startMs - b.startMs);
}

/** The rows of `m` whose snapshot time is in none of `windows`. */
export function outsideWindows(
  m: SplitMatrix,
  windows: readonly TimeWindow[],
): { rows: SplitMatrix; keep: Uint32Array } {
  const keepList: number[] = [];
  for (let i = 0; i < m.rows; i++) {
    const t = m.ts[i] as number;
    if (!windows.some((w) => t >= w.fromMs && t < w.toMs)) keepList.push(i);
  }
  const keep = Uint32Array.from(keepList);
  return { rows: selectRows(m, keep), keep };
}

const MarginRuleSchema = z.object({ feature: z.string(), a: z.number(), b: z.number() });
const LogisticSchema = z.object({
  weights: z.tuple([z.array(z.number()), z.array(z.number()).length(1)]),
  calibration: CalibrationSchema,
});

/** Rows of `pd` by band: count, mean pd and observed default rate (null for an empty band). */
export function pdBands(pd: ArrayLike<number>, y: ArrayLike<number>, edges = PD_BANDS): PdBand[] {
  return reliabilityByEdges(pd, y, edges).map((b) => ({
    lo: b.lo,
    hi: b.hi,
    rows: b.count,
    meanPd: b.count ? b.meanPredicted : null,
    observed: b.count ? b.observedRate : null,
  }));
}

/**
 * The stored baselines' pds for `test`: the margin rule (a logistic in one raw feature) and the logistic
 * regression (weights over the model's normalised features, then its calibration), as training scored them
 * (the logistic in float64 here, so to float rounding).
 */
export function scoreStoredBaselines(
  baselines: Record<string, unknown>,
  normalisation: Normalisation,
  test: SplitMatrix,
): Record<string, Float32Array> {
  const out: Record<string, Float32Array> = {};
  const rule = MarginRuleSchema.safeParse(baselines['margin-rule']);
  if (rule.success) {
    const col = F[rule.data.feature as keyof typeof F];
    if (col === undefined)
      throw new TrainingDataError(`margin-rule baseline feature "${rule.data.feature}" is unknown`);
    out['margin-rule'] = scoreLogistic1d(rule.data, splitColumn(test, col));
  }
  const logistic = LogisticSchema.safeParse(baselines.logistic);
  if (logistic.success && logistic.data.weights[0].length === test.cols) {
    const [w, [bias]] = logistic.data.weights;
    const z = normalise(normalisation, test.x, test.rows);
    const pd = new Float32Array(test.rows);
    for (let i = 0; i < test.rows; i++) {
      let s = bias as number;
      for (let k = 0; k < test.cols; k++) s += (w[k] as number) * (z[i * test.cols + k] as number);
      pd[i] = 1 / (1 + Math.exp(-s));
    }
    out.logistic = applyCalibrationInPlace(logistic.data.calibration, pd);
  }
  return out;
}

export async function evaluateModel(opts: EvaluateModelOptions): Promise<ModelEvaluation> {
  if (opts.events.length === 0) throw new TrainingDataError('no history to evaluate on');
  // the model read once (the scorer and the stored baselines from the same files); a model of another
  // feature schema is refused before any history is read
  const files = await readModelFiles(opts.model);
  const meta = assertCompatible(opts.model, files.meta);
  const histories: HistoryRows[] = [];
  for (const file of opts.events)
    histories.push(
      await buildHistoryRows(file, {
        everyMs: meta.everyMs,
        horizonMs: meta.horizonMs,
        // a model trained on the rows below a margin ratio is judged on those rows, as training tested it
        ...(meta.rows ? { maxMarginRatio: meta.rows.maxMarginRatio } : {}),
        onProgress: (events) => opts.onProgress?.({ file, events }),
      }),
    );
  const test = gather(histories, planSplits([], histories, meta.horizonMs), 'test');
  if (test.rows === 0)
    throw new TrainingDataError(
      `no account holds a position at any ${meta.everyMs / 60_000} min step of ${opts.events.join(', ')}`,
    );
  const liquidations = combinedLiquidations(histories);
  const scorer = await loadScorer(files);
  const pd: Record<string, Float32Array> = {};
  try {
    pd.model = await scorer.score(test.x, test.rows);
  } finally {
    await scorer.close();
  }
  Object.assign(pd, scoreStoredBaselines(meta.baselines, meta.normalisation, test));
  const metrics: Record<string, Metrics> = {};
  const reliability: Record<string, PdBand[]> = {};
  for (const [name, p] of Object.entries(pd)) {
    metrics[name] = evaluate(p, test, liquidations, meta.everyMs);
    reliability[name] = pdBands(p, test.y);
  }
  let positives = 0;
  for (const v of test.y) positives += v;
  const periodMs = opts.periodMs ?? 3_600_000;
  const result: ModelEvaluation = {
    model: opts.model,
    files: [...opts.events],
    rows: test.rows,
    positives,
    metrics,
    reliability,
    periodMs,
    byPeriod: byPeriod(test.ts, test.y, pd, periodMs),
  };
  if (opts.exclude && opts.exclude.length > 0) {
    const { rows: rest, keep } = outsideWindows(test, opts.exclude);
    const restMetrics: Record<string, Metrics> = {};
    for (const [name, p] of Object.entries(pd))
      restMetrics[name] = evaluate(
        Float32Array.from(keep, (i) => p[i] as number),
        rest,
        liquidations,
        meta.everyMs,
      );
    let restPositives = 0;
    for (const v of rest.y) restPositives += v;
    result.outside = {
      windows: [...opts.exclude],
      rows: rest.rows,
      positives: restPositives,
      metrics: restMetrics,
    };
  }
  return result;
}
