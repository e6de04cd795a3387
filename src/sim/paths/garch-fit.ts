/**
 * Fitting the synthetic price model to real hourly returns: GARCH(1,1) with standardised Student-t shocks
 * by maximum likelihood (variance targeting, Nelder-Mead), then the jump component from the residuals the
 * t distribution does not explain, and the crash regime from drawdown episodes. The fitted values used by
 * the named synthetic scenarios are written by `scenarios/fit-params.ts` to `scenarios/fitted-params.json`
 * and documented in `scenarios/README.md`.
 */
import { nelderMead } from './nelder-mead.js';
import { mean, variance } from './stats.js';

export interface GarchParams {
  /** variance intercept, (log return)^2 per step */
  omega: number;
  /** weight of the last squared shock */
  alpha: number;
  /** weight of the last variance */
  beta: number;
  /** Student-t degrees of freedom of the standardised shocks (> 2) */
  nu: number;
  /** the step these parameters are for, ms */
  stepMs: number;
}

export interface GarchFit extends GarchParams {
  /** mean log return per step (removed before fitting) */
  mu: number;
  logLik: number;
  n: number;
}

/** ln Gamma(x) for x > 0 (Lanczos, g = 7). */
export function lnGamma(x: number): number {
  const c = [
    0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
    12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
  ];
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - lnGamma(1 - x);
  const xx = x - 1;
  let a = c[0]!;
  const t = xx + 7.5;
  for (let i = 1; i < 9; i++) a += c[i]! / (xx + i);
  return 0.5 * Math.log(2 * Math.PI) + (xx + 0.5) * Math.log(t) - t + Math.log(a);
}

/** Conditional variances of a GARCH(1,1) over demeaned returns, started at the unconditional variance. */
export function conditionalVariances(eps: ArrayLike<number>, p: GarchParams): Float64Array {
  const h = new Float64Array(eps.length);
  const persistence = p.alpha + p.beta;
  let prev = persistence < 1 ? p.omega / (1 - persistence) : variance(eps);
  let prevEps2 = prev;
  for (let t = 0; t < eps.length; t++) {
    prev = p.omega + p.alpha * prevEps2 + p.beta * prev;
    h[t] = prev;
    prevEps2 = eps[t]! ** 2;
  }
  return h;
}

export function garchTLogLik(eps: ArrayLike<number>, p: GarchParams): number {
  const h = conditionalVariances(eps, p);
  const nu = p.nu;
  const k = lnGamma((nu + 1) / 2) - lnGamma(nu / 2) - 0.5 * Math.log(Math.PI * (nu - 2));
  let ll = 0;
  for (let t = 0; t < eps.length; t++) {
    const ht = h[t]!;
    ll += k - 0.5 * Math.log(ht) - ((nu + 1) / 2) * Math.log(1 + eps[t]! ** 2 / (ht * (nu - 2)));
  }
  return ll;
}

const logistic = (x: number): number => 1 / (1 + Math.exp(-x));
const logit = (p: number): number => Math.log(p / (1 - p));

/** Maximum-likelihood GARCH(1,1)-t with variance targeting (omega = var * (1 - alpha - beta)). */
export function fitGarchT(returns: ArrayLike<number>, stepMs: number): GarchFit {
  const mu = mean(returns);
  const eps = Float64Array.from(returns as ArrayLike<number>, (r) => r - mu);
  const v = variance(eps);
  const unpack = (x: readonly number[]): GarchParams => {
    const persistence = 0.999 * logistic(x[0]!);
    const alpha = persistence * logistic(x[1]!);
    return {
      omega: v * (1 - persistence),
      alpha,
      beta: persistence - alpha,
      nu: 2.1 + Math.exp(x[2]!),
      stepMs,
    };
  };
  const start = [logit(0.95 / 0.999), logit(0.1 / 0.95), Math.log(2)];
  const res = nelderMead((x) => -garchTLogLik(eps, unpack(x)), start, { step: 0.7, maxIterations: 800 });
  const p = unpack(res.x);
  return { ...p, mu, logLik: -res.value, n: eps.length };
}

/** Standardised residuals z_t = eps_t / sqrt(h_t). */
export function standardisedResiduals(returns: ArrayLike<number>, fit: GarchFit): Float64Array {
  const eps = Float64Array.from(returns as ArrayLike<number>, (r) => r - fit.mu);
  const h = conditionalVariances(eps, fit);
  return eps.map((e, t) => e / Math.sqrt(h[t]!));
}

export interface JumpParams {
  /** jumps per step */
  intensity: number;
  /** mean jump, log return */
  meanLog: number;
  /** standard deviation of the jump, log return */
  sdLog: number;
}

/**
 * Jumps = the residuals beyond `threshold` standard deviations in excess of what the fitted unit-variance
 * t(nu) predicts there. Intensity = excess count / n; size = the raw returns of those steps.
 */
export function fitJumps(
  returns: ArrayLike<number>,
  fit: GarchFit,
  threshold = 6,
  tailProb?: number,
): JumpParams {
  const z = standardisedResiduals(returns, fit);
  const big: number[] = [];
  for (let t = 0; t < z.length; t++) if (Math.abs(z[t]!) > threshold) big.push(returns[t]!);
  const expected = (tailProb ?? tTailProbability(threshold, fit.nu)) * z.length;
  const excess = Math.max(0, big.length - expected);
  return {
    intensity: excess / z.length,
    meanLog: big.length > 0 ? mean(big) : 0,
    sdLog: big.length > 1 ? Math.sqrt(variance(big) + mean(big) ** 2) : 0,
  };
}

/** P(|Z| > x) for a unit-variance Student-t(nu), by numerical integration of the density. */
export function tTailProbability(x: number, nu: number): number {
  const s = Math.sqrt((nu - 2) / nu);
  const k = Math.exp(lnGamma((nu + 1) / 2) - lnGamma(nu / 2)) / Math.sqrt(nu * Math.PI);
  const density = (u: number): number => k * (1 + (u * u) / nu) ** (-(nu + 1) / 2);
  // P(|Z|>x) = P(|T| > x / s), T a standard t; integrate the density from 0 to x/s (Simpson)
  const b = x / s;
  const n = 2000;
  const hstep = b / n;
  let acc = density(0) + density(b);
  for (let i = 1; i < n; i++) acc += (i % 2 === 1 ? 4 : 2) * density(i * hstep);
  return Math.max(0, 1 - 2 * ((acc * hstep) / 3));
}

export interface CrashRegimeParams {
  /** probability per hour of entering a crash regime */
  entryPerHour: number;
  /** mean duration of a crash regime, hours */
  meanHours: number;
  /** mean log return per hour inside a crash */
  driftPerHour: number;
  /** volatility inside a crash divided by volatility outside */
  volMultiplier: number;
  /** crash episodes found */
  episodes: number;
}

/**
 * Crash episodes: an episode starts at an hour whose trailing `windowHours` log return is below
 * `entryLog` and lasts while that return stays below `exitLog`. Returns the Markov-regime parameters.
 */
export function fitCrashRegime(
  hourlyCloses: ArrayLike<number>,
  { windowHours = 6, entryLog = -0.1, exitLog = -0.03 } = {},
): CrashRegimeParams {
  const r: number[] = [];
  for (let i = 1; i < hourlyCloses.length; i++) r.push(Math.log(hourlyCloses[i]! / hourlyCloses[i - 1]!));
  const inCrash = new Array<boolean>(r.length).fill(false);
  let active = false;
  let episodes = 0;
  for (let t = windowHours; t < hourlyCloses.length; t++) {
    const w = Math.log(hourlyCloses[t]! / hourlyCloses[t - windowHours]!);
    if (!active && w < entryLog) {
      active = true;
      episodes++;
      // the crash began within the window: mark its hours
      for (let k = t - windowHours; k < t; k++) inCrash[k] = true;
    } else if (active && w > exitLog) active = false;
    if (active) inCrash[t - 1] = true;
  }
  const crash = r.filter((_, i) => inCrash[i]);
  const calm = r.filter((_, i) => !inCrash[i]);
  return {
    entryPerHour: episodes / r.length,
    meanHours: episodes > 0 ? crash.length / episodes : 0,
    driftPerHour: crash.length > 0 ? mean(crash) : 0,
    volMultiplier: calm.length > 1 && crash.length > 1 ? Math.sqrt(variance(crash) / variance(calm)) : 1,
    episodes,
  };
}
