/**
 * One-feature logistic regression, p = sigmoid(a * x + b), fitted by Newton's method on the log-loss
 * against targets in [0, 1]. Platt calibration (x = logit of the model's score, smoothed targets) and the
 * margin-rule baseline (x = distance to liquidation in sigmas, 0/1 labels) are both this fit.
 */
export interface Logistic1dFit {
  a: number;
  b: number;
}

function meanLoss(
  x: ArrayLike<number>,
  target: (i: number) => number,
  a: number,
  b: number,
  weights: ArrayLike<number> | undefined,
): number {
  let s = 0;
  let total = 0;
  for (let i = 0; i < x.length; i++) {
    const w = weights ? (weights[i] as number) : 1;
    const z = a * (x[i] as number) + b;
    // log(1 + e^z) - t z, computed without overflow
    s += w * ((z > 0 ? z + Math.log1p(Math.exp(-z)) : Math.log1p(Math.exp(z))) - target(i) * z);
    total += w;
  }
  return s / Math.max(1e-300, total);
}

/**
 * Damped Newton: each step is halved until the log-loss does not rise, so saturated inputs (logits of
 * scores at 0 or 1) cannot send the fit off to infinity. `weights` (one per row, default 1) weigh each
 * row's log-loss.
 */
export function fitLogistic1dNewton(
  x: ArrayLike<number>,
  target: (i: number) => number,
  start: Logistic1dFit = { a: 0, b: 0 },
  iterations = 100,
  weights?: ArrayLike<number>,
): Logistic1dFit {
  if (weights && weights.length !== x.length)
    throw new RangeError(`${weights.length} weights for ${x.length} rows`);
  let { a, b } = start;
  let loss = meanLoss(x, target, a, b, weights);
  for (let it = 0; it < iterations; it++) {
    let g0 = 0;
    let g1 = 0;
    let h00 = 1e-9;
    let h01 = 0;
    let h11 = 1e-9;
    for (let i = 0; i < x.length; i++) {
      const xi = x[i] as number;
      const wi = weights ? (weights[i] as number) : 1;
      const p = 1 / (1 + Math.exp(-(a * xi + b)));
      const d = wi * (p - target(i));
      const w = wi * p * (1 - p);
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
    let t = 1;
    let accepted = false;
    for (let halvings = 0; halvings < 40; halvings++, t /= 2) {
      const l = meanLoss(x, target, a - t * da, b - t * db, weights);
      if (l <= loss) {
        a -= t * da;
        b -= t * db;
        loss = l;
        accepted = true;
        break;
      }
    }
    if (!accepted || t * (Math.abs(da) + Math.abs(db)) < 1e-10) break;
  }
  return { a, b };
}
