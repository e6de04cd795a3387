/**
 * `runBacktest`: the simulator with the whole risk pipeline in the loop, once per policy, on the same seed,
 * traders and market paths; then the comparison every risk committee asks for.
 */
import { type PolicyConfig, resolvePolicyConfig } from '../margin/index.js';
import type { PdScorer } from '../model/types.js';
import { buildMarket } from '../sim/market/market-paths.js';
import { loadScenario } from '../sim/scenario/load.js';
import { simulate } from '../sim/simulate.js';
import type { SimulationSummary } from '../sim/venue/types.js';
import { AttributionTracker, type BadDebtAttribution } from './attribution.js';
import { type ConservationResult, ConservationTracker } from './conservation.js';
import { MeasureCollector, type RunMeasures } from './metrics.js';
import { BacktestInputError, type PolicyName } from './policies.js';
import { createRiskEngine, type EngineObservation, type PdSource } from './risk-engine.js';

export interface BacktestOptions {
  scenario: string;
  accounts: number;
  seed: number;
  policies: PolicyName[];
  /** required by `predictive` unless `constantPd` is given */
  scorer?: PdScorer;
  /** replace the model's pd by a constant (tests) */
  constantPd?: number;
  /** the non-ML rule's margin-ratio threshold; default 1.5 */
  marginRatioThreshold?: number;
  /**
   * equity / MM at or above which an armed margin-ratio rule disarms (>= its threshold); default: the
   * threshold itself (no hysteresis)
   */
  marginRatioExit?: number;
  /** overrides of the margin core's policy thresholds (both early-reducing policies use them) */
  policyConfig?: Partial<PolicyConfig>;
  /**
   * more runs of the early-reducing policies after `policies`, each with its own label and settings (a
   * threshold sweep); `policies` must then start with `liquidation-only`, which is run once
   */
  variants?: PolicyVariant[];
  /** bad-debt attribution: a first REDUCE less than this many minutes before a bankruptcy is late; default 15 */
  lateMinutes?: number;
  /** `run` is the policy's name, or a variant's label */
  onProgress?: (run: string, minute: number, minutes: number) => void;
}

/** One more run of an early-reducing policy with its own settings (see `BacktestOptions.variants`). */
export interface PolicyVariant {
  /** unique among the runs; keys the per-run records */
  label: string;
  policy: 'predictive' | 'margin-ratio';
  /** merged over `BacktestOptions.policyConfig` */
  policyConfig?: Partial<PolicyConfig>;
  /** the margin-ratio rule's threshold; default `BacktestOptions.marginRatioThreshold` */
  marginRatioThreshold?: number;
  /** the margin-ratio rule's exit level; default `BacktestOptions.marginRatioExit`, else its threshold */
  marginRatioExit?: number;
}

export interface PolicyResult extends RunMeasures {
  policy: PolicyName;
  /** a variant's label (absent for the runs of `policies`, whose records are keyed by the policy name) */
  label?: string;
  /** accounts reduced early that the liquidation-only run never liquidated */
  falseAlarms: number;
  /** USD: notional reduced on those accounts */
  falseAlarmNotional: number;
  /** USD: what the reductions cost those accounts (fees + slippage against the mark) */
  falseAlarmCost: number;
  /** accounts the liquidation-only run liquidated and this run did not */
  saved: number;
  /** accounts restricted to reduce-only (`summary.reduceOnly`) that the liquidation-only run never liquidated */
  restrictedFalseAlarms: number;
  /** share of the liquidation-only bad debt avoided (0..1; null for the reference itself or no bad debt) */
  badDebtAvoided: number | null;
  /** value conservation over the run, replayed from its events */
  conservation: ConservationResult;
  /** simulator's own summary, for cross-checks */
  summary: SimulationSummary;
}

export interface BacktestResult {
  scenario: string;
  accounts: number;
  seed: number;
  minutes: number;
  policies: PolicyResult[];
  /** [ts, USD] per policy (per label for variants) */
  insuranceFund: Record<string, [number, number][]>;
  /** [minute ts, USD] per policy (per label for variants) */
  liquidationsPerMinute: Record<string, [number, number][]>;
  /** why the bad debt left was left, per early-reducing policy (per label for variants) */
  attribution: Record<string, BadDebtAttribution>;
  /** pd of accounts in the hour before the reference run's peak liquidation minute (predictive only) */
  preCrashPd: { crashTs: number | null; liquidated: number[]; survived: number[] };
}

interface RunSpec {
  label: string;
  policy: PolicyName;
  variant: boolean;
  policyConfig: PolicyConfig;
  marginRatioThreshold: number;
  marginRatioExit: number;
}

/**
 * A run's policy config. The margin-ratio rule runs without the pd reduce tier's margin-ratio gate
 * (`reduceGateMarginRatio`: how the model's score is combined with the ratio): its own trigger is its gate,
 * and a default gate below that trigger would silently lower it.
 */
function configFor(policy: PolicyName, partial: Partial<PolicyConfig>): PolicyConfig {
  return resolvePolicyConfig(policy === 'margin-ratio' ? { ...partial, reduceGateMarginRatio: 0 } : partial);
}

/** The runs: `policies`, then the variants (validated). */
function runSpecs(opts: BacktestOptions): RunSpec[] {
  const base = opts.policyConfig ?? {};
  const threshold = opts.marginRatioThreshold ?? 1.5;
  const runs: RunSpec[] = opts.policies.map((policy) => ({
    label: policy,
    policy,
    variant: false,
    policyConfig: configFor(policy, base),
    marginRatioThreshold: threshold,
    marginRatioExit: opts.marginRatioExit ?? threshold,
  }));
  for (const v of opts.variants ?? [])
    runs.push({
      label: v.label,
      policy: v.policy,
      variant: true,
      policyConfig: configFor(v.policy, { ...base, ...v.policyConfig }),
      marginRatioThreshold: v.marginRatioThreshold ?? threshold,
      marginRatioExit: v.marginRatioExit ?? opts.marginRatioExit ?? v.marginRatioThreshold ?? threshold,
    });
  if (runs[0]?.policy !== 'liquidation-only')
    throw new BacktestInputError('the first run must be liquidation-only (the reference)');
  const labels = new Set<string>();
  for (const r of runs) {
    if (labels.has(r.label)) throw new BacktestInputError(`two runs labelled "${r.label}"`);
    labels.add(r.label);
    if (r.variant && r.policy === 'liquidation-only')
      throw new BacktestInputError('liquidation-only runs once, as the reference');
    if (r.policy === 'margin-ratio' && !(r.marginRatioThreshold > 0))
      throw new BacktestInputError(`${r.label}: the margin-ratio threshold must be > 0`);
    if (r.policy === 'margin-ratio' && !(r.marginRatioExit >= r.marginRatioThreshold))
      throw new BacktestInputError(
        `${r.label}: the margin-ratio exit level ${r.marginRatioExit} is below its threshold ${r.marginRatioThreshold}`,
      );
  }
  return runs;
}

export async function runBacktest(opts: BacktestOptions): Promise<BacktestResult> {
  const runs = runSpecs(opts);
  const loaded = loadScenario(opts.scenario);
  if (runs.some((r) => r.policy === 'predictive') && !opts.scorer && opts.constantPd === undefined)
    throw new BacktestInputError('the predictive policy needs a model (--model DIR)');
  const market = buildMarket(loaded, opts.seed, opts.accounts);
  const fundStart = loaded.scenario.insuranceFundPerAccount * opts.accounts;
  const results: PolicyResult[] = [];
  const insuranceFund: Record<string, [number, number][]> = {};
  const liquidationsPerMinute: Record<string, [number, number][]> = {};
  const attribution: Record<string, BadDebtAttribution> = {};
  let reference: MeasureCollector | undefined;
  let crashTs: number | null = null;
  const preCrash = { liquidated: [] as number[], survived: [] as number[] };
  const observations: EngineObservation[] = [];
  let observed = false;

  for (const run of runs) {
    const { policy, policyConfig } = run;
    let source: PdSource | undefined;
    if (policy === 'predictive')
      source =
        opts.constantPd !== undefined
          ? { kind: 'constant', pd: opts.constantPd }
          : { kind: 'model', scorer: opts.scorer as PdScorer };
    else if (policy === 'margin-ratio')
      source = {
        kind: 'margin-ratio',
        threshold: run.marginRatioThreshold,
        exitThreshold: run.marginRatioExit,
      };
    const tracker = source
      ? new AttributionTracker({
          pdReduce: policyConfig.pdReduce,
          healthyRatio: policyConfig.marginRatioWatch,
          ...(opts.lateMinutes !== undefined ? { lateMinutes: opts.lateMinutes } : {}),
        })
      : undefined;
    const collector = new MeasureCollector(
      fundStart,
      tracker ? (account, ts, usd) => tracker.badDebt(account, ts, usd) : undefined,
    );
    const conservation = new ConservationTracker(fundStart);
    // the pd before the crash comes from the first predictive run
    const keepObservations = policy === 'predictive' && !observed;
    if (keepObservations) observed = true;
    const engine = source
      ? createRiskEngine(
          source,
          policyConfig,
          keepObservations ? (o) => observations.push(o) : undefined,
          tracker
            ? (ts, account, signal, decision) => tracker.look(ts, account, signal, decision)
            : undefined,
        )
      : undefined;
    const summary = await simulate(loaded, {
      accounts: opts.accounts,
      seed: opts.seed,
      market,
      ...(engine ? { riskEngine: engine.engine } : {}),
      sink: {
        write: (ev) => {
          collector.add(ev);
          conservation.add(ev);
          engine?.pipeline.apply(ev);
        },
      },
      onMinute: (m, n) => opts.onProgress?.(run.label, m + 1, n),
    });
    if (policy === 'liquidation-only') {
      reference = collector;
      const perMinute = collector.liquidationsPerMinute();
      let peak = 0;
      for (const [ts, v] of perMinute)
        if (v > peak) {
          peak = v;
          crashTs = ts;
        }
    }
    const ref = reference as MeasureCollector;
    let falseAlarms = 0;
    let falseAlarmNotional = 0;
    let falseAlarmCost = 0;
    for (const a of collector.reducedAccounts) {
      if (ref.liquidatedAccounts.has(a)) continue;
      falseAlarms++;
      falseAlarmNotional += collector.reducedNotionalByAccount.get(a) ?? 0;
      falseAlarmCost += collector.reductionCostByAccount.get(a) ?? 0;
    }
    let restrictedFalseAlarms = 0;
    for (const a of engine?.restricted ?? []) if (!ref.liquidatedAccounts.has(a)) restrictedFalseAlarms++;
    let saved = 0;
    for (const a of ref.liquidatedAccounts) if (!collector.liquidatedAccounts.has(a)) saved++;
    const refBadDebt = ref.m.badDebt;
    results.push({
      policy,
      ...(run.variant ? { label: run.label } : {}),
      ...collector.m,
      falseAlarms,
      falseAlarmNotional,
      falseAlarmCost,
      saved,
      restrictedFalseAlarms,
      badDebtAvoided:
        policy === 'liquidation-only' || refBadDebt <= 0 ? null : 1 - collector.m.badDebt / refBadDebt,
      conservation: conservation.result(),
      summary,
    });
    insuranceFund[run.label] = [[market.startMs, fundStart], ...collector.fundPath];
    liquidationsPerMinute[run.label] = collector.liquidationsPerMinute();
    if (tracker) attribution[run.label] = tracker.result();
  }

  if (crashTs !== null && reference) {
    const from = crashTs - 3_600_000;
    for (const o of observations) {
      if (o.ts < from || o.ts >= crashTs) continue;
      o.accounts.forEach((a, i) => {
        (reference?.liquidatedAccounts.has(a) ? preCrash.liquidated : preCrash.survived).push(
          o.pd[i] as number,
        );
      });
    }
  }
  return {
    scenario: loaded.scenario.name,
    accounts: opts.accounts,
    seed: opts.seed,
    minutes: market.minutes,
    policies: results,
    insuranceFund,
    liquidationsPerMinute,
    attribution,
    preCrashPd: { crashTs, ...preCrash },
  };
}
