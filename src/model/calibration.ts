/**
 * Probability calibration fitted on a held-out split and applied at serving, so that a pd of 0.2 means
 * about 20%. Platt scaling fits `sigmoid(a * logit(s) + b)` by Newton's method (with the usual target
 * smoothing); isotonic regression fits a monotone step function by pool-adjacent-violators and
 * interpolates linearly between block centres.
 */
import { z } from 'zod';
import { fitLogistic1dNewton } from './logistic-1d.js';

export const CalibrationSchema = z.discriminatedUnion('method', [
  z.object({ method: z.literal('identity') }),
  z.object({ method: z.literal('platt'), a: z.number(), b: z.number() }),
  z.object({ method: z.literal('isotonic'), x: z.array(z.number()), y: z.array(z.number()) }),
]);
export type Calibration = z.infer<typeof CalibrationSchema>;

const EPS = 1e-6;
function logit(p: number): number {
  const q = Math.min(1 - EPS, Math.max(EPS, p));
  return Math.log(q / (1 - q));
}
function sigmoid(z: number): number {
  return 1 / (1 + Math.exp(-z));
}

/**
 * Platt scaling on (score, label) rows; `weights` (one per row, default 1) weigh each row's log-loss, and
 * the smoothed targets count weighted defaults and non-defaults.
 */
export function fitPlatt(
  scores: ArrayLike<number>,
  labels: ArrayLike<number>,
  iterations = 100,
  weights?: ArrayLike<number>,
): Calibration {
  let pos = 0;
  let total = 0;
  for (let i = 0; i < labels.length; i++) {
    const w = weights ? (weights[i] as number) : 1;
    pos += w * (labels[i] as number);
    total += w;
  }
  const neg = total - pos;
  // Platt's smoothed targets avoid infinite weights on separable data
  const hi = (pos + 1) / (pos + 2);
  const lo = 1 / (neg + 2);
  const xs = Float64Array.from({ length: scores.length }, (_, i) => logit(scores[i] as number));
  const { a, b } = fitLogistic1dNewton(
    xs,
    (i) => (labels[i] === 1 ? hi : lo),
    { a: 1, b: 0 },
    iterations,
    weights,
  );
  return { method: 'platt', a, b };
}

/** Isotonic regression by pool-adjacent-violators; `weights` (one per row, default 1) weigh each row. */
export function fitIsotonic(
  scores: ArrayLike<number>,
  labels: ArrayLike<number>,
  weights?: ArrayLike<number>,
): Calibration {
  const idx = Array.from({ length: scores.length }, (_, i) => i).sort(
    (i, j) => (scores[i] as number) - (scores[j] as number),
  );
  // blocks: [weighted sumX, weighted sumY, total weight]
  const sx: number[] = [];
  const sy: number[] = [];
  const n: number[] = [];
  for (const i of idx) {
    const w = weights ? (weights[i] as number) : 1;
    if (!(w > 0)) continue; // a row of weight 0 has no say; negative or NaN weights are not weights
    sx.push(w * (scores[i] as number));
    sy.push(w * (labels[i] as number));
    n.push(w);
    while (sy.length > 1) {
      const k = sy.length - 1;
      if ((sy[k - 1] as number) / (n[k - 1] as number) <= (sy[k] as number) / (n[k] as number)) break;
      sx[k - 1] = (sx[k - 1] as number) + (sx.pop() as number);
      sy[k - 1] = (sy[k - 1] as number) + (sy.pop() as number);
      n[k - 1] = (n[k - 1] as number) + (n.pop() as number);
    }
  }
  return compressIsotonic({
    method: 'isotonic',
    x: sx.map((v, k) => v / (n[k] as number)),
    y: sy.map((v, k) => v / (n[k] as number)),
  });
}

/**
 * Drop the inner knots of every run of equal values: the piecewise-linear function is unchanged (constant
 * over the run), and a calibration fitted on 500k rows keeps hundreds of knots instead of hundreds of thousands.
 */
export function compressIsotonic(cal: { method: 'isotonic'; x: number[]; y: number[] }): Calibration {
  const x: number[] = [];
  const y: number[] = [];
  const n = cal.x.length;
  for (let i = 0; i < n; i++) {
    const yi = cal.y[i] as number;
    const inner = i > 0 && i < n - 1 && cal.y[i - 1] === yi && cal.y[i + 1] === yi;
    if (inner) continue;
    x.push(cal.x[i] as number);
    y.push(yi);
  }
  return { method: 'isotonic', x, y };
}

export function applyCalibration(cal: Calibration, score: number): number {
  switch (cal.method) {
    case 'identity':
      return score;
    case 'platt':
      return sigmoid(cal.a * logit(score) + cal.b);
    case 'isotonic': {
      const { x, y } = cal;
      if (x.length === 0) return score;
      if (score <= (x[0] as number)) return y[0] as number;
      const last = x.length - 1;
      if (score >= (x[last] as number)) return y[last] as number;
      let lo = 0;
      let hi = last;
      while (hi - lo > 1) {
        const mid = (lo + hi) >> 1;
        if ((x[mid] as number) <= score) lo = mid;
        else hi = mid;
      }
      const x0 = x[lo] as number;
      const x1 = x[hi] as number;
      const t = x1 > x0 ? (score - x0) / (x1 - x0) : 0;
      return (y[lo] as number) + t * ((y[hi] as number) - (y[lo] as number));
    }
  }
}

export function applyCalibrationInPlace(cal: Calibration, scores: Float32Array): Float32Array {
  if (cal.method === 'identity') return scores;
  for (let i = 0; i < scores.length; i++) scores[i] = applyCalibration(cal, scores[i] as number);
  return scores;
}
