/**
 * Descriptive statistics of return series: the stylised facts the synthetic paths are checked against
 * (excess kurtosis for fat tails, autocorrelation of absolute returns for volatility clustering) and the
 * correlation matrix + Cholesky factor that make instruments move together.
 */

export function mean(xs: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < xs.length; i++) s += xs[i]!;
  return xs.length > 0 ? s / xs.length : 0;
}

export function variance(xs: ArrayLike<number>): number {
  const m = mean(xs);
  let s = 0;
  for (let i = 0; i < xs.length; i++) s += (xs[i]! - m) ** 2;
  return xs.length > 1 ? s / (xs.length - 1) : 0;
}

/** Excess kurtosis (0 for a normal distribution). */
export function excessKurtosis(xs: ArrayLike<number>): number {
  const m = mean(xs);
  let m2 = 0;
  let m4 = 0;
  for (let i = 0; i < xs.length; i++) {
    const d = (xs[i]! - m) ** 2;
    m2 += d;
    m4 += d * d;
  }
  m2 /= xs.length;
  m4 /= xs.length;
  return m2 > 0 ? m4 / (m2 * m2) - 3 : 0;
}

/** Sample autocorrelation at `lag`. */
export function autocorrelation(xs: ArrayLike<number>, lag: number): number {
  const m = mean(xs);
  let num = 0;
  let den = 0;
  for (let i = 0; i < xs.length; i++) {
    const d = xs[i]! - m;
    den += d * d;
    if (i >= lag) num += d * (xs[i - lag]! - m);
  }
  return den > 0 ? num / den : 0;
}

export function absolute(xs: ArrayLike<number>): number[] {
  return Array.from(xs, (x) => Math.abs(x));
}

/** Log returns of consecutive prices. */
export function logReturns(prices: ArrayLike<number>): Float64Array {
  const out = new Float64Array(Math.max(0, prices.length - 1));
  for (let i = 1; i < prices.length; i++) out[i - 1] = Math.log(prices[i]! / prices[i - 1]!);
  return out;
}

/** Pearson correlation matrix of equally long series. */
export function correlationMatrix(series: readonly ArrayLike<number>[]): number[][] {
  const n = series.length;
  const ms = series.map(mean);
  const sd = series.map((s, i) => {
    let v = 0;
    for (let t = 0; t < s.length; t++) v += (s[t]! - ms[i]!) ** 2;
    return Math.sqrt(v);
  });
  const out = Array.from({ length: n }, () => new Array<number>(n).fill(0));
  for (let i = 0; i < n; i++)
    for (let j = 0; j < n; j++) {
      if (i === j) {
        out[i]![j] = 1;
        continue;
      }
      const a = series[i]!;
      const b = series[j]!;
      let c = 0;
      for (let t = 0; t < Math.min(a.length, b.length); t++) c += (a[t]! - ms[i]!) * (b[t]! - ms[j]!);
      out[i]![j] = sd[i]! > 0 && sd[j]! > 0 ? c / (sd[i]! * sd[j]!) : 0;
    }
  return out;
}

export class NotPositiveDefiniteError extends Error {
  readonly code = 'NOT_POSITIVE_DEFINITE';
  constructor() {
    super('correlation matrix is not positive definite (check it is symmetric with a unit diagonal)');
    this.name = 'NotPositiveDefiniteError';
  }
}

/** Lower-triangular L with L L^T = m. */
export function cholesky(m: readonly (readonly number[])[]): number[][] {
  const n = m.length;
  const l = Array.from({ length: n }, () => new Array<number>(n).fill(0));
  for (let i = 0; i < n; i++)
    for (let j = 0; j <= i; j++) {
      let s = m[i]![j]!;
      for (let k = 0; k < j; k++) s -= l[i]![k]! * l[j]![k]!;
      if (i === j) {
        if (!(s > 0)) throw new NotPositiveDefiniteError();
        l[i]![i] = Math.sqrt(s);
      } else l[i]![j] = s / l[j]![j]!;
    }
  return l;
}
