/**
 * The fitted parameters of the synthetic price model (scenarios/fitted-params.json, written by
 * scenarios/fit-params.ts from the real hourly data) and the per-base reference volatility the book model
 * measures "normal" against.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { SCENARIOS_DIR, ScenarioError } from '../scenario/load.js';

const Garch = z.object({
  omega: z.number(),
  alpha: z.number(),
  beta: z.number(),
  nu: z.number(),
  stepMs: z.number(),
  mu: z.number(),
  logLik: z.number(),
  n: z.number(),
});
const Fitted = z.object({
  source: z.string(),
  garch: Garch,
  jumps: z.object({ intensity: z.number(), meanLog: z.number(), sdLog: z.number() }),
  crash: z.object({
    entryPerHour: z.number(),
    meanHours: z.number(),
    driftPerHour: z.number(),
    volMultiplier: z.number(),
    episodes: z.number(),
  }),
  minute: z.object({ alphaScale: z.number(), nu: z.number(), varianceScale: z.number() }).optional(),
  crashVolMultiplierMinute: z.number().optional(),
});
const FittedFile = z.object({
  instruments: z.record(z.string(), Fitted),
  correlation: z.object({ symbols: z.array(z.string()), matrix: z.array(z.array(z.number())) }),
});

export type FittedInstrument = z.infer<typeof Fitted>;
export type FittedParams = z.infer<typeof FittedFile>;

let cached: FittedParams | undefined;

export function fittedParams(): FittedParams {
  if (cached) return cached;
  const path = join(SCENARIOS_DIR, 'fitted-params.json');
  try {
    cached = FittedFile.parse(JSON.parse(readFileSync(path, 'utf8')));
  } catch (e) {
    throw new ScenarioError(
      'SCENARIO_DATA',
      `cannot read fitted parameters ${path}: ${(e as Error).message}`,
    );
  }
  return cached;
}

export function fittedFor(base: string): FittedInstrument | undefined {
  return fittedParams().instruments[base.toUpperCase()];
}

/** Long-run one-minute log-return standard deviation of a base (from its hourly fit), if fitted. */
export function referenceMinuteSigma(base: string): number | undefined {
  const f = fittedFor(base);
  if (!f) return undefined;
  const g = f.garch;
  return Math.sqrt(g.omega / (1 - g.alpha - g.beta) / (g.stepMs / 60_000));
}

/** Fitted correlation between two bases (1 on the diagonal, undefined when either is not fitted). */
export function fittedCorrelation(a: string, b: string): number | undefined {
  const { symbols, matrix } = fittedParams().correlation;
  const i = symbols.indexOf(a.toUpperCase());
  const j = symbols.indexOf(b.toUpperCase());
  return i < 0 || j < 0 ? undefined : matrix[i]?.[j];
}
