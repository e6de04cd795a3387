/**
 * Synthetic minute marks: a multivariate GARCH(1,1) with Student-t shocks, Poisson jumps, a Markov crash
 * regime and optional scheduled crashes (the flash-crash scenario), instruments tied together by the
 * Cholesky factor of their empirical return correlation.
 *
 * Hourly fits become minute dynamics by Nelson's (1990) diffusion limit of GARCH(1,1): persistence per
 * minute = (alpha + beta)^(1/60) (the same clock-time half-life of volatility shocks), unconditional
 * variance / 60, alpha / sqrt(60), beta the rest. The shocks are multivariate t: one chi-square mixing draw
 * per minute shared by all instruments (tail dependence: they crash together), with the average nu.
 */
import { Rng } from '../random.js';
import type { CrashRegimeParams, GarchParams, JumpParams } from './garch-fit.js';
import { cholesky } from './stats.js';

export interface SyntheticInstrument {
  symbol: string;
  /** USD */
  startPrice: number;
  /** fitted on hourly returns */
  garch: GarchParams;
  /** per hour */
  jumps: JumpParams;
  /** mean log return per hour inside the crash regime (negative) */
  crashDriftPerHour: number;
  crashVolMultiplier: number;
  /** minute-model calibration (indirect inference, scenarios/fit-params.ts); defaults: 1 and garch.nu */
  minute?: MinuteCalibration;
}

export interface MinuteCalibration {
  /** multiplies Nelson's alpha / sqrt(60) */
  alphaScale: number;
  /** Student-t degrees of freedom of the one-minute shocks */
  nu: number;
  /** multiplies the unconditional minute variance (so that simulated hours have the real variance) */
  varianceScale?: number;
}

export interface ScheduledCrash {
  /** minute index at which the fall starts */
  atMinute: number;
  /** minutes of falling */
  fallMinutes: number;
  /** total fall of the first instrument, log return (negative); others scale by their volatility ratio */
  fallLog: number;
  /** share of the fall recovered afterwards (0..1) */
  recoveryShare: number;
  recoveryMinutes: number;
}

export interface SyntheticMarket {
  instruments: readonly SyntheticInstrument[];
  /** correlation of hourly log returns, instruments order */
  correlation: readonly (readonly number[])[];
  /** the crash regime's entry probability and duration (hourly), shared by all instruments */
  crashRegime: Pick<CrashRegimeParams, 'entryPerHour' | 'meanHours'>;
  scheduledCrashes?: readonly ScheduledCrash[];
}

export interface MinuteGarch {
  omega: number;
  alpha: number;
  beta: number;
  nu: number;
}

/** Nelson's diffusion-limit mapping of an hourly GARCH(1,1) to one-minute steps. */
export function toMinuteGarch(hourly: GarchParams, cal?: MinuteCalibration): MinuteGarch {
  const steps = hourly.stepMs / 60_000;
  const persistenceH = hourly.alpha + hourly.beta;
  const uncondH = hourly.omega / Math.max(1e-9, 1 - persistenceH);
  const persistence = persistenceH ** (1 / steps);
  const alpha = Math.min(0.5 * persistence, ((cal?.alphaScale ?? 1) * hourly.alpha) / Math.sqrt(steps));
  const beta = Math.max(0, persistence - alpha);
  const uncond = (uncondH / steps) * (cal?.varianceScale ?? 1);
  return { omega: uncond * (1 - alpha - beta), alpha, beta, nu: cal?.nu ?? hourly.nu };
}

export interface SyntheticPaths {
  marks: Float64Array[];
  /** 1 where the crash regime (or a scheduled crash) was active */
  regime: Uint8Array;
}

export function simulateSynthetic(market: SyntheticMarket, minutes: number, seed: number): SyntheticPaths {
  const k = market.instruments.length;
  const chol = cholesky(market.correlation);
  const shockRng = Rng.stream(seed, 'market/garch-shocks');
  const jumpRng = Rng.stream(seed, 'market/jumps');
  const regimeRng = Rng.stream(seed, 'market/regime');
  const g = market.instruments.map((i) => toMinuteGarch(i.garch, i.minute));
  const nu = g.reduce((s, x) => s + x.nu, 0) / k;
  const tScale = Math.sqrt((nu - 2) / nu);
  const h = g.map((p) => p.omega / Math.max(1e-12, 1 - p.alpha - p.beta));
  const hCap = h.map((v) => v * 400);
  const eps2 = [...h];
  const logP = market.instruments.map((i) => Math.log(i.startPrice));
  const marks = market.instruments.map(() => new Float64Array(minutes));
  const regime = new Uint8Array(minutes);
  const entry = market.crashRegime.entryPerHour / 60;
  const exit = 1 / Math.max(1, market.crashRegime.meanHours * 60);
  const commonJump = Math.min(...market.instruments.map((i) => i.jumps.intensity)) / 60;
  const volRatio = h.map((v) => Math.sqrt(v / h[0]!) || 1);
  const sched = market.scheduledCrashes ?? [];
  let inCrash = false;
  const z = new Float64Array(k);
  const n = new Float64Array(k);
  for (let m = 0; m < minutes; m++) {
    for (let i = 0; i < k; i++) marks[i]![m] = Math.exp(logP[i]!);
    inCrash = inCrash ? !regimeRng.bernoulli(exit) : regimeRng.bernoulli(entry);
    const mix = Math.sqrt(nu / (2 * shockRng.gamma(nu / 2))) * tScale;
    for (let i = 0; i < k; i++) n[i] = shockRng.normal();
    for (let i = 0; i < k; i++) {
      let v = 0;
      for (let j = 0; j <= i; j++) v += chol[i]![j]! * n[j]!;
      z[i] = v * mix;
    }
    const common = jumpRng.bernoulli(commonJump);
    const commonSize = jumpRng.normal();
    let scheduledDrift = 0;
    let scheduled = false;
    for (const c of sched) {
      if (m >= c.atMinute && m < c.atMinute + c.fallMinutes) {
        scheduledDrift += c.fallLog / c.fallMinutes;
        scheduled = true;
      } else if (m >= c.atMinute + c.fallMinutes && m < c.atMinute + c.fallMinutes + c.recoveryMinutes)
        scheduledDrift -= (c.fallLog * c.recoveryShare) / c.recoveryMinutes;
    }
    regime[m] = inCrash || scheduled ? 1 : 0;
    for (let i = 0; i < k; i++) {
      const inst = market.instruments[i]!;
      const p = g[i]!;
      h[i] = Math.min(hCap[i]!, p.omega + p.alpha * eps2[i]! + p.beta * h[i]!);
      const volMult = inCrash || scheduled ? inst.crashVolMultiplier : 1;
      const diffusive = Math.sqrt(h[i]!) * z[i]!;
      // the variance recursion is fed the diffusive shock only: jumps, crash drift and the crash
      // regime's extra volatility sit on top (otherwise one jump would multiply the variance ~10x)
      eps2[i] = diffusive * diffusive;
      let r = diffusive * volMult;
      if (inCrash) r += inst.crashDriftPerHour / 60;
      r += scheduledDrift * volRatio[i]!;
      const idio = Math.max(0, inst.jumps.intensity / 60 - commonJump);
      if (common) r += inst.jumps.meanLog + inst.jumps.sdLog * commonSize;
      if (jumpRng.bernoulli(idio)) r += inst.jumps.meanLog + inst.jumps.sdLog * jumpRng.normal();
      logP[i]! += r;
    }
  }
  return { marks, regime };
}
