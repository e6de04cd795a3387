/**
 * The baselines always reported beside the model:
 *  - `margin-rule`: the margin rule alone, a logistic fit of the label on the distance to liquidation in
 *    volatility units (one feature, Newton's method);
 *  - `logistic`: logistic regression on all (normalised) features, trained with the same loop as the MLP.
 */
export interface Logistic1d {
  feature: string;
  /** pd = sigmoid(a * x + b) */
  a: number;
  b: number;
}

export function fitLogistic1d(
  x: ArrayLike<number>,
  y: ArrayLike<number>,
  feature: string,
  iterations = 50,
): Logistic1d {
  let a = 0;
  let b = 0;
  let mean = 0;
  for (let i = 0; i < y.length; i++) mean += y[i] as number;
  mean /= Math.max(1, y.length);
  b = Math.log((mean + 1e-6) / (1 - mean + 1e-6));
  for (let it = 0; it < iterations; it++) {
    let g0 = 0;
    let g1 = 0;
    let h00 = 1e-9;
    let h01 = 0;
    let h11 = 1e-9;
    for (let i = 0; i < x.length; i++) {
      const xi = x[i] as number;
      const p = 1 / (1 + Math.exp(-(a * xi + b)));
      const d = p - (y[i] as number);
      const w = p * (1 - p);
      g0 += d * xi;
      g1 += d;
      h00 += w * xi * xi;
      h01 += w * xi;
      h11 += w;
    }
    const det = h00 * h11 - h01 * h01;
    if (Math.abs(det) < 1e-12) break;
    const da = (h11 * g0 - h01 * g1) / det;
    const db = (h00 * g1 - h01 * g0) / det;
    a -= da;
    b -= db;
    if (Math.abs(da) + Math.abs(db) < 1e-10) break;
  }
  return { feature, a, b };
}

export function scoreLogistic1d(m: Logistic1d, x: ArrayLike<number>): Float32Array {
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = 1 / (1 + Math.exp(-(m.a * (x[i] as number) + m.b)));
  return out;
}
