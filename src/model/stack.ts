/**
 * The second stage of the two-stage score. The network ranks accounts by everything it sees; the margin
 * rule's distance to liquidation (in horizon sigmas) is what matters most in the last minutes, and an MLP
 * over z-scored inputs resolves that tail coarsely (most rows sit at the distance cap). The stage is a
 * logistic regression, fitted on the held-out calibration split, of the label on
 *   [logit(network output), ln(offset + feature) for each stacked feature, 1]
 * and its output goes through the calibration (isotonic or Platt) like the network's did before.
 */
import { z } from 'zod';

export const StackSchema = z.object({
  /** stacked raw feature columns, by feature-schema name */
  features: z.array(z.string()).min(1),
  /** added before the log, in the feature's unit */
  offset: z.number().positive(),
  /** weight of logit(network output) */
  wLogit: z.number(),
  /** one weight per stacked feature (on ln(offset + x)) */
  wFeatures: z.array(z.number()),
  bias: z.number(),
});
export type Stack = z.infer<typeof StackSchema>;

const EPS = 1e-7;
function logit(p: number): number {
  const q = Math.min(1 - EPS, Math.max(EPS, p));
  return Math.log(q / (1 - q));
}

/** Solve a small dense system A x = b (Gaussian elimination with partial pivoting); null if singular. */
function solve(a: number[][], b: number[]): number[] | null {
  const n = b.length;
  const m = a.map((row, i) => [...row, b[i] as number]);
  for (let c = 0; c < n; c++) {
    let piv = c;
    for (let r = c + 1; r < n; r++)
      if (Math.abs((m[r] as number[])[c] as number) > Math.abs((m[piv] as number[])[c] as number)) piv = r;
    if (Math.abs((m[piv] as number[])[c] as number) < 1e-12) return null;
    [m[c], m[piv]] = [m[piv] as number[], m[c] as number[]];
    const rowC = m[c] as number[];
    for (let r = 0; r < n; r++) {
      if (r === c) continue;
      const row = m[r] as number[];
      const f = (row[c] as number) / (rowC[c] as number);
      for (let k = c; k <= n; k++) row[k] = (row[k] as number) - f * (rowC[k] as number);
    }
  }
  return m.map((row, i) => (row[n] as number) / (row[i] as number));
}

/** Design row i: [logit(raw), ln(offset + x_f)..., 1]. */
function designRow(
  raw: number,
  matrix: Float32Array,
  row: number,
  cols: number,
  idx: readonly number[],
  offset: number,
  out: Float64Array,
): void {
  out[0] = logit(raw);
  for (let k = 0; k < idx.length; k++)
    out[k + 1] = featureTerm(offset, matrix[row * cols + (idx[k] as number)] as number);
  out[idx.length + 1] = 1;
}

export function featureIndices(names: readonly string[], features: readonly string[]): number[] {
  return features.map((f) => {
    const i = names.indexOf(f);
    if (i < 0) throw new Error(`stacked feature "${f}" is not in the model's feature schema`);
    return i;
  });
}

/**
 * Mean log-loss of weights `w` over the design rows, each row weighted by `rowWeights` (default 1), clamped
 * so that saturated rows stay finite.
 */
function meanLogLoss(
  design: Float64Array,
  d: number,
  rows: number,
  labels: ArrayLike<number>,
  w: number[],
  rowWeights: ArrayLike<number> | undefined,
): number {
  let s = 0;
  let total = 0;
  for (let i = 0; i < rows; i++) {
    let z = 0;
    for (let k = 0; k < d; k++) z += (w[k] as number) * (design[i * d + k] as number);
    const p = Math.min(1 - 1e-12, Math.max(1e-12, 1 / (1 + Math.exp(-z))));
    const r = rowWeights ? (rowWeights[i] as number) : 1;
    s -= r * ((labels[i] as number) === 1 ? Math.log(p) : Math.log(1 - p));
    total += r;
  }
  return s / Math.max(1e-300, total);
}

/**
 * Fit the stage by damped Newton's method (iteratively reweighted least squares with step halving, so it
 * cannot diverge on saturated logits) on the log-loss, from the identity on the network's logit. A tiny
 * ridge keeps the Hessian invertible. `rowWeights` (one per row, default 1) weigh each row's log-loss.
 */
export function fitStack(
  raw: Float32Array,
  matrix: Float32Array,
  rows: number,
  names: readonly string[],
  labels: ArrayLike<number>,
  features: readonly string[] = ['liq_dist_sigma'],
  offset = 0.05,
  iterations = 50,
  rowWeights?: ArrayLike<number>,
): Stack {
  if (rowWeights && rowWeights.length !== rows)
    throw new RangeError(`${rowWeights.length} row weights for ${rows} rows`);
  const cols = names.length;
  const idx = featureIndices(names, features);
  const d = idx.length + 2;
  const design = new Float64Array(rows * d);
  const xr = new Float64Array(d);
  for (let i = 0; i < rows; i++) {
    designRow(raw[i] as number, matrix, i, cols, idx, offset, xr);
    design.set(xr, i * d);
  }
  let w = new Array<number>(d).fill(0);
  w[0] = 1;
  let loss = meanLogLoss(design, d, rows, labels, w, rowWeights);
  for (let it = 0; it < iterations; it++) {
    const g = new Array<number>(d).fill(0);
    const h = Array.from({ length: d }, (_, i) => Array.from({ length: d }, (_, j) => (i === j ? 1e-6 : 0)));
    for (let i = 0; i < rows; i++) {
      let z = 0;
      for (let k = 0; k < d; k++) z += (w[k] as number) * (design[i * d + k] as number);
      const p = 1 / (1 + Math.exp(-z));
      const r = rowWeights ? (rowWeights[i] as number) : 1;
      const e = r * (p - (labels[i] as number));
      const v = r * p * (1 - p);
      for (let a = 0; a < d; a++) {
        const xa = design[i * d + a] as number;
        g[a] = (g[a] as number) + e * xa;
        const ha = h[a] as number[];
        for (let b = a; b < d; b++) ha[b] = (ha[b] as number) + v * xa * (design[i * d + b] as number);
      }
    }
    for (let a = 0; a < d; a++)
      for (let b = 0; b < a; b++) (h[a] as number[])[b] = (h[b] as number[])[a] as number;
    const step = solve(h, g);
    if (!step) break;
    let t = 1;
    let next = w;
    let nextLoss = loss;
    for (let halvings = 0; halvings < 30; halvings++, t /= 2) {
      const cand = w.map((wk, k) => wk - t * (step[k] as number));
      const l = meanLogLoss(design, d, rows, labels, cand, rowWeights);
      if (l <= loss) {
        next = cand;
        nextLoss = l;
        break;
      }
    }
    const improved = loss - nextLoss;
    w = next;
    loss = nextLoss;
    if (improved < 1e-12) break;
  }
  return {
    features: [...features],
    offset,
    wLogit: w[0] as number,
    wFeatures: w.slice(1, d - 1),
    bias: w[d - 1] as number,
  };
}

/** ln(offset + x), x floored at 0: the stage's transform of a stacked feature */
function featureTerm(offset: number, x: number): number {
  return Math.log(offset + Math.max(0, x));
}

/** logit(1 - 1e-6): the calibration's logit clamps its input to [1e-6, 1 - 1e-6] */
const CAL_LOGIT_CLAMP = Math.log((1 - 1e-6) / 1e-6);

/**
 * The one loop behind both apply functions: scores[i] (network outputs for rows `start + i` of `matrix`)
 * become sigmoid(z), z the stage's logit; with `platt`, sigmoid(a * clamp(z) + b) instead.
 */
function applyStage(
  stack: Stack,
  platt: { a: number; b: number } | null,
  scores: Float32Array,
  matrix: Float32Array,
  cols: number,
  idx: readonly number[],
  start: number,
): Float32Array {
  const nf = idx.length;
  for (let i = 0; i < scores.length; i++) {
    const base = (start + i) * cols;
    let z = stack.bias + stack.wLogit * logit(scores[i] as number);
    for (let k = 0; k < nf; k++)
      z +=
        (stack.wFeatures[k] as number) *
        featureTerm(stack.offset, matrix[base + (idx[k] as number)] as number);
    if (platt) z = platt.a * Math.min(CAL_LOGIT_CLAMP, Math.max(-CAL_LOGIT_CLAMP, z)) + platt.b;
    scores[i] = 1 / (1 + Math.exp(-z));
  }
  return scores;
}

/**
 * Apply the stage in place: `scores[i]` (network outputs for rows `start + i` of `matrix`) become the
 * stage's probabilities.
 */
export function applyStackInPlace(
  stack: Stack,
  scores: Float32Array,
  matrix: Float32Array,
  cols: number,
  idx: readonly number[],
  start = 0,
): Float32Array {
  return applyStage(stack, null, scores, matrix, cols, idx, start);
}

/**
 * The stage and a Platt (or identity) calibration in one pass, for serving: Platt's logit of the stage's
 * sigmoid is the stage's own logit z (clamped as the calibration clamps), so a row costs one log per input
 * and one exp instead of two sigmoids and a second logit. Agrees with `applyStackInPlace` followed by
 * `applyCalibrationInPlace` to float rounding (about 1e-7; tested through the predictor).
 */
export function applyStackCalibratedInPlace(
  stack: Stack,
  platt: { a: number; b: number } | null,
  scores: Float32Array,
  matrix: Float32Array,
  cols: number,
  idx: readonly number[],
): Float32Array {
  return applyStage(stack, platt, scores, matrix, cols, idx, 0);
}
