/**
 * The baselines always reported beside the model:
 *  - `margin-rule`: the margin rule alone, a logistic fit of the label on the distance to liquidation in
 *    volatility units (one feature, Newton's method);
 *  - `logistic`: logistic regression on all (normalised) features, trained with the same loop as the MLP.
 */
import { fitLogistic1dNewton } from '../src/model/logistic-1d.js';

export interface Logistic1d {
  feature: string;
  /** pd = sigmoid(a * x + b) */
  a: number;
  b: number;
}

/** `weights`: one per row (default 1), as in the model's own second stage and calibration */
export function fitLogistic1d(
  x: ArrayLike<number>,
  y: ArrayLike<number>,
  feature: string,
  weights?: ArrayLike<number>,
): Logistic1d {
  let mean = 0;
  let total = 0;
  for (let i = 0; i < y.length; i++) {
    const w = weights ? (weights[i] as number) : 1;
    mean += w * (y[i] as number);
    total += w;
  }
  mean /= Math.max(1e-300, total);
  // start at the base rate: a = 0, b = logit(mean)
  const start = { a: 0, b: Math.log((mean + 1e-6) / (1 - mean + 1e-6)) };
  const { a, b } = fitLogistic1dNewton(x, (i) => y[i] as number, start, 50, weights);
  return { feature, a, b };
}

export function scoreLogistic1d(m: Logistic1d, x: ArrayLike<number>): Float32Array {
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = 1 / (1 + Math.exp(-(m.a * (x[i] as number) + m.b)));
  return out;
}
