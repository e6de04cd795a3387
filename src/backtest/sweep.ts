/**
 * Threshold sweep: the false alarms each signal pays for the bad debt it avoids. On one scenario, seed and
 * population, liquidation-only runs once; then the predictive policy at each pdReduce threshold (pdWatch
 * and pdHysteresis scaled down with it) and each margin-ratio gate (`reduceGateMarginRatio`: the model's
 * score combined with the venue's ratio), and the margin-ratio rule at each equity / MM threshold and each
 * exit factor (an armed rule disarms at threshold x factor: the same kind of stickiness the pd tier's
 * hysteresis gives), every other policy setting the same. Each signal's frontier is its Pareto set of (bad debt avoided, false alarms)
 * points; the two are compared by piecewise-linear interpolation at the levels of bad debt avoided both reach.
 */
import { DEFAULT_POLICY_CONFIG, type PolicyConfig } from '../margin/index.js';
import type { ModelFiles } from '../model/model-files.js';
import type { PdScorer } from '../model/types.js';
import { loadScenario } from '../sim/scenario/load.js';
import { type BadDebtAttribution, DEFAULT_LATE_MINUTES } from './attribution.js';
import type { NewBadDebt } from './metrics.js';
import { BacktestInputError } from './policies.js';
import { type PolicyVariant, runBacktest } from './run.js';

export type SweepSignal = 'predictive' | 'margin-ratio';

export const DEFAULT_PD_THRESHOLDS = [0.05, 0.1, 0.2, 0.3, 0.5];
export const DEFAULT_RATIO_THRESHOLDS = [1.5, 2, 3, 5, 8, 12];

export interface SweepOptions {
  scenario: string;
  accounts: number;
  seed: number;
  scorer?: PdScorer;
  /** replace the model's pd by a constant (tests) */
  constantPd?: number;
  /** overrides of the margin core's policy config, shared by every run */
  policyConfig?: Partial<PolicyConfig>;
  /**
   * pdReduce values of the predictive policy; empty: no predictive runs. Unless empty, the run at the policy
   * config's own pdReduce and gate (`ownSettings`) is added when the grid lacks it, so every such sweep
   * reports `atSettings`
   */
  pdThresholds: number[];
  /**
   * reduceGateMarginRatio values of the predictive policy (0: none), each run with every pd threshold;
   * default: the policy config's own (one gate)
   */
  gates?: number[];
  /**
   * the predictive runs as (pdReduce, gate) pairs instead of `pdThresholds` x `gates` (which must then be
   * empty and absent): an earlier sweep's, read by `predictiveSettingsOf`. The policy's own run is added as
   * with the grid
   */
  predictive?: PredictiveSetting[];
  /**
   * equity / MM thresholds of the margin-ratio rule; empty: no margin-ratio runs. Default: with `ratioFrom`
   * and no `ratioExitFactors`, every margin-ratio run of that sweep; otherwise `DEFAULT_RATIO_THRESHOLDS`
   */
  ratioThresholds?: number[];
  /**
   * exit factors of the margin-ratio rule (>= 1), each run with every ratio threshold T: an armed rule
   * disarms at equity / MM >= T x factor; default [1] (disarms the moment the ratio is back above T), or with
   * `ratioFrom` and no `ratioThresholds`, that sweep's runs as they are
   */
  ratioExitFactors?: number[];
  lateMinutes?: number;
  onProgress?: (run: string, minute: number, minutes: number) => void;
  /** runs after the reference going at once in worker threads (see `BacktestOptions.jobs`); default 1 */
  jobs?: number;
  /** with jobs > 1: the model the workers build (instead of `scorer`; see `BacktestOptions.modelDir`) */
  modelDir?: string | ModelFiles;
  /**
   * take the margin-ratio points from an earlier sweep instead of running them (they do not depend on the
   * model): it must be of the same scenario, population, policy config and late-minutes, its
   * liquidation-only reference must equal this run's exactly, and it must hold every requested setting
   */
  ratioFrom?: { source: string; sweep: ReusableSweep };
}

/** One predictive run of a sweep: the reduce tier's threshold and its margin-ratio gate (0: none). */
export interface PredictiveSetting {
  pdReduce: number;
  gate: number;
}

/** The label of the predictive run at `pdReduce` and `gate`, as the sweep's files and tables name it. */
export function predictiveLabel(pdReduce: number, gate: number): string {
  return gate === 0 ? `predictive pd>=${pdReduce}` : `predictive pd>=${pdReduce} ratio<${gate}`;
}

/** What `ratioFrom` reads of an earlier sweep (its `sweep.json`). */
export interface ReusableSweep {
  scenario: string;
  accounts: number;
  seed: number;
  minutes: number;
  policyConfig: Partial<PolicyConfig>;
  reference: SweepResult['reference'];
  points: (Omit<SweepPoint, 'attribution'> & { attribution: Omit<BadDebtAttribution, 'bankruptcies'> })[];
}

export interface SweepPoint {
  signal: SweepSignal;
  /** pdReduce (predictive) or equity / MM (margin-ratio) */
  threshold: number;
  /** the pdWatch used (predictive) */
  pdWatch?: number;
  /** the margin-ratio gate of the reduce tier (predictive; 0 = none) */
  gate?: number;
  /** equity / MM at which the armed rule disarms (margin-ratio; = threshold: no hysteresis) */
  exit?: number;
  label: string;
  /** USD */
  badDebt: number;
  /** share of the liquidation-only bad debt avoided (0..1; null without reference bad debt) */
  avoided: number | null;
  falseAlarms: number;
  /** USD */
  falseAlarmNotional: number;
  /** USD: fees + slippage of the false alarms */
  falseAlarmCost: number;
  /** USD */
  reducedNotional: number;
  /** reduced notional / liquidation-only liquidated notional */
  reducedRatio: number;
  liquidations: number;
  saved: number;
  /**
   * bad debt on accounts that left none in the liquidation-only run (`PolicyResult.newBadDebt`); absent on a
   * point reused from a sweep.json written before it was measured (2026-12-07)
   */
  newBadDebt?: NewBadDebt;
  /** accounts restricted to reduce-only while flagged, and of those never liquidated by liquidation-only */
  restricted: number;
  restrictedFalseAlarms: number;
  /** orders the restriction refused */
  refusedOrders: number;
  /** on its signal's Pareto frontier */
  onFrontier: boolean;
  /** taken from the earlier sweep named by `SweepResult.ratioFrom`, not run here */
  reused?: boolean;
  attribution: BadDebtAttribution;
}

export interface FrontierPoint {
  /** bad debt avoided, 0..1 */
  avoided: number;
  falseAlarms: number;
  threshold: number;
  /** the run's label (unique within a sweep) */
  label?: string;
}

export interface FrontierLevel {
  avoided: number;
  /** interpolated false alarms of the first / second signal */
  a: number;
  b: number;
}

export interface FrontierComparison {
  a: string;
  b: string;
  /** the overlap of bad debt avoided both frontiers reach (0..1); from > to: no overlap */
  from: number;
  to: number;
  /** the levels compared: every frontier point inside the overlap and its ends */
  levels: FrontierLevel[];
  /** mean of (a - b) false alarms over the overlap (trapezoids; exact for piecewise-linear frontiers) */
  meanDiff: number | null;
  minDiff: number | null;
  maxDiff: number | null;
  verdict: string;
}

/**
 * The predictive run at the policy's own settings (its pdReduce and margin-ratio gate) against the margin-ratio
 * rule's frontier at the same bad debt avoided: issue #8's check of a default ("fewer false alarms than the
 * non-ML rule at the same bad debt"). Where the rule's frontier never avoids as much, the verdict is `beyond`
 * and `ratioBest` says how far it gets.
 */
export type AtSettings = {
  label: string;
  avoided: number;
  falseAlarms: number;
  reducedRatio: number;
} & (
  | {
      /** fewer / level (|diff| <= LEVEL_WITHIN) / more */
      verdict: 'fewer' | 'level' | 'more';
      /** the margin-ratio frontier's false alarms at `avoided`, linearly interpolated */
      ratioFalseAlarms: number;
      /** predictive minus rule (negative: fewer) */
      diff: number;
    }
  | {
      verdict: 'beyond';
      ratioFalseAlarms: null;
      diff: null;
      /** the rule's most-avoiding frontier point */
      ratioBest: { avoided: number; falseAlarms: number };
    }
);

/** |diff| at or below which `atSettings` calls the two level (false alarms) */
export const LEVEL_WITHIN = 4;

/** The pdReduce and margin-ratio gate a policy config runs with: its overrides, else the defaults. */
export function ownSettings(policyConfig: Partial<PolicyConfig>): { pdReduce: number; gate: number } {
  return {
    pdReduce: policyConfig.pdReduce ?? DEFAULT_POLICY_CONFIG.pdReduce,
    gate: policyConfig.reduceGateMarginRatio ?? DEFAULT_POLICY_CONFIG.reduceGateMarginRatio,
  };
}

/**
 * `AtSettings` for the predictive point run with `pdReduce` and `gate` (0 = no gate), or null when the sweep
 * has no such run, or when that run avoids less than any run of the rule (nothing to compare it with).
 * `points` are a sweep's; the rule's frontier is taken from its margin-ratio points.
 */
export function atSettings(
  points: readonly Pick<
    SweepPoint,
    'signal' | 'label' | 'threshold' | 'gate' | 'avoided' | 'falseAlarms' | 'reducedRatio'
  >[],
  pdReduce: number,
  gate: number,
): AtSettings | null {
  const p = points.find(
    (q) =>
      q.signal === 'predictive' && q.threshold === pdReduce && (q.gate ?? 0) === gate && q.avoided !== null,
  );
  if (!p || p.avoided === null) return null;
  const rule = paretoFrontier(
    points
      .filter((q) => q.signal === 'margin-ratio' && q.avoided !== null)
      .map((q) => ({ avoided: q.avoided as number, falseAlarms: q.falseAlarms, threshold: q.threshold })),
  );
  const base = {
    label: p.label,
    avoided: p.avoided,
    falseAlarms: p.falseAlarms,
    reducedRatio: p.reducedRatio,
  };
  const at = interpolateFrontier(rule, p.avoided);
  if (at !== null) {
    const diff = p.falseAlarms - at;
    const verdict = Math.abs(diff) <= LEVEL_WITHIN ? 'level' : diff < 0 ? 'fewer' : 'more';
    return { ...base, verdict, ratioFalseAlarms: at, diff };
  }
  const last = rule[rule.length - 1];
  if (!last || p.avoided < last.avoided) return null;
  const ratioBest = { avoided: last.avoided, falseAlarms: last.falseAlarms };
  return { ...base, verdict: 'beyond', ratioFalseAlarms: null, diff: null, ratioBest };
}

/** One line for `atSettings`: what the sweep's table and `preempt sweep-summary` print. */
export function atSettingsText(a: AtSettings): string {
  const head = `${(a.avoided * 100).toFixed(1)}% avoided with ${a.falseAlarms} false alarms, reduced ${a.reducedRatio.toFixed(2)}x`;
  if (a.verdict === 'beyond')
    return `${head}; the margin-ratio rule never avoids as much (its best: ${(a.ratioBest.avoided * 100).toFixed(1)}% with ${a.ratioBest.falseAlarms} false alarms)`;
  const how =
    a.verdict === 'level' ? `level (within ${LEVEL_WITHIN})` : `${Math.round(Math.abs(a.diff))} ${a.verdict}`;
  return `${head}; the margin-ratio frontier at the same bad debt avoided: about ${Math.round(a.ratioFalseAlarms)}: ${how}`;
}

export interface SweepResult {
  scenario: string;
  accounts: number;
  seed: number;
  minutes: number;
  /** the policy-config overrides shared by every run */
  policyConfig: Partial<PolicyConfig>;
  reference: {
    badDebt: number;
    liquidations: number;
    liquidatedNotional: number;
  };
  points: SweepPoint[];
  frontiers: Record<SweepSignal, FrontierPoint[]>;
  comparison: FrontierComparison;
  /**
   * the pdReduce and gate the policy config resolved to when the sweep ran (its overrides over the defaults of
   * that time): what `atSettings` judges and `preempt sweep-summary` reads, so that a later change of the
   * defaults does not change which run an old sweep.json is judged by
   */
  ownSettings: { pdReduce: number; gate: number };
  /** the predictive run at the policy's own pdReduce and gate against the rule (null: no such run) */
  atSettings: AtSettings | null;
  /** the sweep the margin-ratio points were taken from, when they were not run here */
  ratioFrom?: string;
}

/**
 * The Pareto frontier: the points no other point beats on both counts (at least as much avoided with at
 * most as many false alarms, better on one); sorted by bad debt avoided (false alarms then rise too). Of
 * identical points the first is kept.
 */
export function paretoFrontier(points: readonly FrontierPoint[]): FrontierPoint[] {
  const sorted = [...points]
    .filter((p) => Number.isFinite(p.avoided) && Number.isFinite(p.falseAlarms))
    .sort((x, y) => y.avoided - x.avoided || x.falseAlarms - y.falseAlarms);
  // walking from the most avoided down, a point is kept when it has strictly fewer false alarms than all
  // points that avoid at least as much
  const out: FrontierPoint[] = [];
  let best = Number.POSITIVE_INFINITY;
  for (const p of sorted) {
    if (p.falseAlarms < best) {
      out.push(p);
      best = p.falseAlarms;
    }
  }
  return out.reverse();
}

/** False alarms on a frontier (sorted by avoided) at `avoided`, piecewise linear; null outside its range. */
export function interpolateFrontier(frontier: readonly FrontierPoint[], avoided: number): number | null {
  const n = frontier.length;
  if (n === 0) return null;
  const first = frontier[0] as FrontierPoint;
  const last = frontier[n - 1] as FrontierPoint;
  if (avoided < first.avoided || avoided > last.avoided) return null;
  for (let i = 1; i < n; i++) {
    const p = frontier[i - 1] as FrontierPoint;
    const q = frontier[i] as FrontierPoint;
    if (avoided <= q.avoided) {
      if (q.avoided === p.avoided) return Math.min(p.falseAlarms, q.falseAlarms);
      return (
        p.falseAlarms + ((avoided - p.avoided) / (q.avoided - p.avoided)) * (q.falseAlarms - p.falseAlarms)
      );
    }
  }
  return first.falseAlarms; // n === 1 and avoided === its level
}

/** a share 0..1 as a percentage with one decimal */
export const pctText = (v: number) => `${(v * 100).toFixed(1)}%`;
const count = (v: number) => Math.round(Math.abs(v)).toLocaleString('en-US');

/** Compares two frontiers at the levels of bad debt avoided both reach. */
export function compareFrontiers(
  a: readonly FrontierPoint[],
  b: readonly FrontierPoint[],
  nameA: string,
  nameB: string,
): FrontierComparison {
  const none = (verdict: string, from = Number.NaN, to = Number.NaN): FrontierComparison => ({
    a: nameA,
    b: nameB,
    from,
    to,
    levels: [],
    meanDiff: null,
    minDiff: null,
    maxDiff: null,
    verdict,
  });
  const range = (f: readonly FrontierPoint[]) =>
    f.length ? `${pctText(f[0]!.avoided)}..${pctText(f[f.length - 1]!.avoided)}` : 'nothing';
  if (a.length === 0 || b.length === 0)
    return none(`no comparison: ${nameA} reaches ${range(a)}, ${nameB} ${range(b)} of the bad debt avoided`);
  const from = Math.max(a[0]!.avoided, b[0]!.avoided);
  const to = Math.min(a[a.length - 1]!.avoided, b[b.length - 1]!.avoided);
  if (from > to)
    return none(
      `the frontiers do not overlap: ${nameA} reaches ${range(a)}, ${nameB} ${range(b)} of the bad debt avoided`,
      from,
      to,
    );
  const xs = [...new Set([from, to, ...a.map((p) => p.avoided), ...b.map((p) => p.avoided)])]
    .filter((x) => x >= from && x <= to)
    .sort((x, y) => x - y);
  const levels: FrontierLevel[] = xs.map((x) => ({
    avoided: x,
    a: interpolateFrontier(a, x) as number,
    b: interpolateFrontier(b, x) as number,
  }));
  const diffs = levels.map((l) => l.a - l.b);
  let meanDiff: number;
  if (levels.length === 1) meanDiff = diffs[0]!;
  else {
    let area = 0;
    for (let i = 1; i < levels.length; i++)
      area += ((diffs[i - 1]! + diffs[i]!) / 2) * (levels[i]!.avoided - levels[i - 1]!.avoided);
    meanDiff = area / (to - from);
  }
  const minDiff = Math.min(...diffs);
  const maxDiff = Math.max(...diffs);
  const word = (d: number) => (d < 0 ? 'fewer' : 'more');
  const span = from === to ? pctText(from) : `${pctText(from)}..${pctText(to)}`;
  let how: string;
  if (levels.length === 1) how = '';
  else if (maxDiff < 0 || minDiff > 0)
    how = ` on average (${count(maxDiff < 0 ? maxDiff : minDiff)} to ${count(maxDiff < 0 ? minDiff : maxDiff)} ${word(meanDiff)} at every level)`;
  else
    how = ` on average (from ${count(minDiff)} ${word(minDiff)} to ${count(maxDiff)} ${word(maxDiff)}, depending on the level)`;
  const verdict =
    Math.round(meanDiff) === 0
      ? `at equal bad debt avoided (${span}), ${nameA} raises about as many false alarms as ${nameB}${how}`
      : `at equal bad debt avoided (${span}), ${nameA} raises ${count(meanDiff)} ${word(meanDiff)} false alarms than ${nameB}${how}`;
  return { a: nameA, b: nameB, from, to, levels, meanDiff, minDiff, maxDiff, verdict };
}

/**
 * The predictive policy's settings at one pdReduce: pdWatch lowered to at most pdReduce / 2, and pdHysteresis
 * to at most the defaults' share of pdReduce (0.03 of 0.2: 15%), so that a low reduce tier can still be left.
 */
export function pdVariantConfig(
  base: Partial<PolicyConfig>,
  pdReduce: number,
): Partial<PolicyConfig> & { pdReduce: number; pdWatch: number; pdHysteresis: number } {
  const d = DEFAULT_POLICY_CONFIG;
  return {
    pdReduce,
    pdWatch: Math.min(base.pdWatch ?? d.pdWatch, pdReduce / 2),
    pdHysteresis: Math.min(base.pdHysteresis ?? d.pdHysteresis, pdReduce * (d.pdHysteresis / d.pdReduce)),
  };
}

/** An exit level as labelled and run: 6 significant digits (1.5 x 1.3 is 1.95, not 1.9500000000000002). */
function roundExit(x: number): number {
  return Number(x.toPrecision(6));
}

/**
 * The equity/MM at which the margin-ratio rule armed below `threshold` disarms, for an exit factor (1: no
 * hysteresis), as a sweep writes it in each run's label and `exit`.
 */
export function ratioExit(threshold: number, factor: number): number {
  return roundExit(threshold * factor);
}

export async function runSweep(opts: SweepOptions): Promise<SweepResult> {
  const check = (name: string, values: number[], ok: (v: number) => boolean) => {
    const seen = new Set<number>();
    for (const v of values) {
      if (!ok(v)) throw new BacktestInputError(`${name}: ${v} is out of range`);
      if (seen.has(v)) throw new BacktestInputError(`${name}: ${v} is given twice`);
      seen.add(v);
    }
  };
  check('pd thresholds', opts.pdThresholds, (v) => Number.isFinite(v) && v > 0 && v <= 1);
  if (opts.predictive && (opts.pdThresholds.length > 0 || opts.gates !== undefined))
    throw new BacktestInputError(
      "the predictive runs are given twice: as pd thresholds and gates, and as an earlier sweep's settings",
    );
  // the earlier sweep's margin-ratio runs as they are, unless a grid of the rule is asked for
  const allFrom =
    opts.ratioFrom && opts.ratioThresholds === undefined && opts.ratioExitFactors === undefined
      ? opts.ratioFrom.sweep
      : undefined;
  const ratioThresholds = opts.ratioThresholds ?? (allFrom ? [] : DEFAULT_RATIO_THRESHOLDS);
  check('ratio thresholds', ratioThresholds, (v) => Number.isFinite(v) && v > 0);
  const base = opts.policyConfig ?? {};
  const own = ownSettings(base);
  const gates = opts.gates ?? [own.gate];
  check('gates', gates, (v) => Number.isFinite(v) && v >= 0);
  if (gates.length === 0) throw new BacktestInputError('gates: give at least one (0 for no gate)');
  // the rule's exit factors matter only for a grid of the rule; the earlier sweep's runs taken whole keep theirs
  const exitFactors = allFrom ? [] : (opts.ratioExitFactors ?? [1]);
  check('ratio exit factors', exitFactors, (v) => Number.isFinite(v) && v >= 1);
  if (!allFrom && exitFactors.length === 0)
    throw new BacktestInputError('ratio exit factors: give at least one (1 for none)');
  const settings: PredictiveSetting[] =
    opts.predictive ?? gates.flatMap((gate) => opts.pdThresholds.map((pdReduce) => ({ pdReduce, gate })));
  const seenSettings = new Set<string>();
  for (const { pdReduce, gate } of settings) {
    const label = predictiveLabel(pdReduce, gate);
    if (!(Number.isFinite(pdReduce) && pdReduce > 0 && pdReduce <= 1 && Number.isFinite(gate) && gate >= 0))
      throw new BacktestInputError(`predictive settings: ${label} is out of range`);
    if (seenSettings.has(label)) throw new BacktestInputError(`predictive settings: ${label} is given twice`);
    seenSettings.add(label);
  }
  const predictiveVariant = ({ pdReduce, gate }: PredictiveSetting): PolicyVariant => ({
    label: predictiveLabel(pdReduce, gate),
    policy: 'predictive',
    policyConfig: { ...pdVariantConfig(base, pdReduce), reduceGateMarginRatio: gate },
  });
  const variants: PolicyVariant[] = settings.map(predictiveVariant);
  // the run `atSettings` judges: the policy's own pdReduce and gate, run whenever the pd tier is swept
  if (settings.length > 0 && !seenSettings.has(predictiveLabel(own.pdReduce, own.gate)))
    variants.push(predictiveVariant(own));
  const ratioVariants: PolicyVariant[] = exitFactors.flatMap((f) =>
    ratioThresholds.map(
      (t): PolicyVariant => ({
        label: f === 1 ? `margin-ratio <${t}` : `margin-ratio <${t} exit>=${ratioExit(t, f)}`,
        policy: 'margin-ratio',
        marginRatioThreshold: t,
        marginRatioExit: ratioExit(t, f),
      }),
    ),
  );
  // with the earlier sweep's runs taken whole, every margin-ratio run it holds; otherwise the grid's, by label
  const reused = opts.ratioFrom
    ? reusableRatioPoints(
        opts,
        base,
        allFrom
          ? allFrom.points.filter((p) => p.signal === 'margin-ratio').map((p) => p.label)
          : ratioVariants.map((v) => v.label),
      )
    : undefined;
  if (variants.length + (reused ?? ratioVariants).length === 0)
    throw new BacktestInputError('the sweep needs at least one threshold');
  if (!reused) variants.push(...ratioVariants);
  const r = await runBacktest({
    scenario: opts.scenario,
    accounts: opts.accounts,
    seed: opts.seed,
    policies: ['liquidation-only'],
    ...(opts.scorer ? { scorer: opts.scorer } : {}),
    ...(opts.constantPd !== undefined ? { constantPd: opts.constantPd } : {}),
    policyConfig: base,
    ...(opts.lateMinutes !== undefined ? { lateMinutes: opts.lateMinutes } : {}),
    ...(opts.jobs !== undefined ? { jobs: opts.jobs } : {}),
    ...(opts.modelDir !== undefined ? { modelDir: opts.modelDir } : {}),
    variants,
    ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
    // the earlier sweep's liquidation-only run must be this one's: compared before the predictive runs
    ...(reused
      ? { onReference: (ref) => checkSameReference(opts.ratioFrom!, ref.scenario, ref.minutes, ref) }
      : {}),
  });
  const ref = r.policies[0]!;
  const points: SweepPoint[] = variants.map((v, i) => {
    const p = r.policies[i + 1]!;
    const signal = v.policy;
    return {
      signal,
      threshold:
        signal === 'predictive' ? (v.policyConfig?.pdReduce as number) : (v.marginRatioThreshold as number),
      ...(signal === 'predictive'
        ? {
            pdWatch: v.policyConfig?.pdWatch as number,
            gate: v.policyConfig?.reduceGateMarginRatio as number,
          }
        : { exit: v.marginRatioExit as number }),
      label: v.label,
      badDebt: p.badDebt,
      avoided: p.badDebtAvoided,
      falseAlarms: p.falseAlarms,
      falseAlarmNotional: p.falseAlarmNotional,
      falseAlarmCost: p.falseAlarmCost,
      reducedNotional: p.reducedNotional,
      reducedRatio: p.reducedNotional / Math.max(1, ref.liquidatedNotional),
      liquidations: p.liquidations,
      saved: p.saved,
      newBadDebt: p.newBadDebt,
      restricted: p.summary.reduceOnly.restrictedAccounts,
      restrictedFalseAlarms: p.restrictedFalseAlarms,
      refusedOrders: p.summary.reduceOnly.rejectedOrders,
      onFrontier: false,
      attribution: r.attribution[v.label] as BadDebtAttribution,
    };
  });
  if (reused) points.push(...reused);
  const frontierOf = (signal: SweepSignal): FrontierPoint[] => {
    const f = paretoFrontier(
      points
        .filter((p) => p.signal === signal && p.avoided !== null)
        .map((p) => ({
          avoided: p.avoided as number,
          falseAlarms: p.falseAlarms,
          threshold: p.threshold,
          label: p.label,
        })),
    );
    for (const q of f) for (const p of points) if (p.label === q.label) p.onFrontier = true;
    return f;
  };
  const frontiers = { predictive: frontierOf('predictive'), 'margin-ratio': frontierOf('margin-ratio') };
  return {
    scenario: r.scenario,
    accounts: r.accounts,
    seed: r.seed,
    minutes: r.minutes,
    policyConfig: base,
    reference: {
      badDebt: ref.badDebt,
      liquidations: ref.liquidations,
      liquidatedNotional: ref.liquidatedNotional,
    },
    points,
    frontiers,
    comparison: compareFrontiers(
      frontiers.predictive,
      frontiers['margin-ratio'],
      'predictive',
      'margin-ratio',
    ),
    ownSettings: own,
    atSettings: atSettings(points, own.pdReduce, own.gate),
    ...(opts.ratioFrom ? { ratioFrom: opts.ratioFrom.source } : {}),
  };
}

/**
 * The policy settings of the pd tiers. The margin-ratio rule's pd is 0 or 1 and it runs without the gate, so
 * they cannot change its runs (a test runs it under two sets of them): `--ratio-from` ignores them when it
 * compares policy configs, so a sweep of another pdReduce or gate can reuse the rule's runs.
 */
export const PD_TIER_KEYS = [
  'pdWatch',
  'pdReduce',
  'pdHysteresis',
  'pdFull',
  'reduceGateMarginRatio',
] as const satisfies readonly (keyof PolicyConfig)[];

/** `c` without the pd tier's settings (`PD_TIER_KEYS`): what of a policy config the margin-ratio rule reads */
export function withoutPdTier(c: Partial<PolicyConfig>): Partial<PolicyConfig> {
  const rest: Partial<PolicyConfig> = { ...c };
  for (const k of PD_TIER_KEYS) delete rest[k];
  return rest;
}

/**
 * The requested margin-ratio settings, taken from the earlier sweep (checked before anything runs: same
 * scenario, population, late-minutes and policy config apart from the pd tier's settings, every setting
 * present); the reference run is compared right after it ran, before the predictive runs
 * (`checkSameReference`).
 */
function reusableRatioPoints(
  opts: SweepOptions,
  base: Partial<PolicyConfig>,
  labels: readonly string[],
): SweepPoint[] {
  const { source, sweep: from } = opts.ratioFrom!;
  const refuse = (why: string): never => {
    throw new BacktestInputError(`--ratio-from ${source}: ${why}; run the margin-ratio settings instead`);
  };
  const scenario = loadScenario(opts.scenario).scenario.name;
  if (from.scenario !== scenario) refuse(`scenario ${from.scenario}, not ${scenario}`);
  if (from.accounts !== opts.accounts) refuse(`${from.accounts} accounts, not ${opts.accounts}`);
  if (from.seed !== opts.seed) refuse(`seed ${from.seed}, not ${opts.seed}`);
  const ruleReads = (c: Partial<PolicyConfig>) => canonicalJson(withoutPdTier(c));
  if (ruleReads(from.policyConfig) !== ruleReads(base))
    refuse(
      `policy config ${canonicalJson(from.policyConfig)}, not ${canonicalJson(base)} (they differ beyond the pd tier's ${PD_TIER_KEYS.join(', ')})`,
    );
  const lateMinutes = opts.lateMinutes ?? DEFAULT_LATE_MINUTES;
  const points: SweepPoint[] = [];
  for (const label of labels) {
    const p = from.points.find((q) => q.signal === 'margin-ratio' && q.label === label);
    if (!p) return refuse(`it has no run "${label}"`);
    if (p.attribution.lateMinutes !== lateMinutes)
      refuse(`late-minutes ${p.attribution.lateMinutes}, not ${lateMinutes}`);
    points.push({
      ...p,
      onFrontier: false,
      reused: true,
      attribution: { ...p.attribution, bankruptcies: [] },
    });
  }
  return points;
}

function checkSameReference(
  ratioFrom: NonNullable<SweepOptions['ratioFrom']>,
  scenario: string,
  minutes: number,
  ref: { badDebt: number; liquidations: number; liquidatedNotional: number },
): void {
  const from = ratioFrom.sweep;
  if (from.scenario !== scenario)
    throw new BacktestInputError(
      `--ratio-from ${ratioFrom.source}: scenario ${from.scenario}, not ${scenario}; run the margin-ratio settings instead`,
    );
  const same =
    from.minutes === minutes &&
    from.reference.badDebt === ref.badDebt &&
    from.reference.liquidations === ref.liquidations &&
    from.reference.liquidatedNotional === ref.liquidatedNotional;
  if (!same)
    throw new BacktestInputError(
      `--ratio-from ${ratioFrom.source}: its liquidation-only run differs from this one (bad debt USD ` +
        `${from.reference.badDebt} vs ${ref.badDebt}, ${from.reference.liquidations} vs ${ref.liquidations} ` +
        `accounts liquidated, ${from.minutes} vs ${minutes} minutes): not the same simulation, so its ` +
        "margin-ratio runs cannot stand in for this one's",
    );
}

/** JSON with sorted keys, for comparing configs written in any key order */
function canonicalJson(v: Record<string, unknown>): string {
  return JSON.stringify(Object.fromEntries(Object.entries(v).sort(([a], [b]) => a.localeCompare(b))));
}
