/**
 * `runBacktest`: the simulator with the whole risk pipeline in the loop, once per policy, on the same seed,
 * traders and market paths; then the comparison every risk committee asks for.
 */
import { type PolicyConfig, resolvePolicyConfig } from '../margin/index.js';
import { type ModelFiles, readModelFiles } from '../model/model-files.js';
import type { PdScorer } from '../model/types.js';
import { buildMarket } from '../sim/market/market-paths.js';
import { loadScenario } from '../sim/scenario/load.js';
import { simulate } from '../sim/simulate.js';
import type { SimulationSummary } from '../sim/venue/types.js';
import { AttributionTracker, type BadDebtAttribution } from './attribution.js';
import { assertRunConsistent, type ConservationResult, ConservationTracker } from './conservation.js';
import { MeasureCollector, type NewBadDebt, newBadDebt, type RunMeasures } from './metrics.js';
import { parallelExecutor } from './parallel.js';
import { BacktestInputError, type PolicyName } from './policies.js';
import { createRiskEngine, type EngineObservation, type PdSource } from './risk-engine.js';

/** The liquidation-only reference, as `BacktestOptions.onReference` sees it right after it ran. */
export interface ReferenceRun {
  scenario: string;
  minutes: number;
  /** USD */
  badDebt: number;
  liquidations: number;
  /** USD */
  liquidatedNotional: number;
}

export interface BacktestOptions {
  /**
   * called right after the reference (liquidation-only) run, before any other: a throw stops the backtest
   * there (a sweep reusing an earlier one's runs checks that the simulation is the same)
   */
  onReference?: (ref: ReferenceRun) => void;
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
  /**
   * runs after the reference going at once, each in a worker thread (default 1: one after the other, in
   * this thread); the outcome is the same, only the wall time changes
   */
  jobs?: number;
  /**
   * with jobs > 1: the model of the predictive runs (instead of `scorer`): a directory, read once when the
   * backtest starts, or one already read by `readModelFiles` (the CLI's, read once and checked); the workers
   * build their model from those bytes
   */
  modelDir?: string | ModelFiles;
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
  /**
   * the margin-ratio rule's exit level; default: its own threshold when it has one (no hysteresis), else
   * `BacktestOptions.marginRatioExit` with the options' threshold
   */
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
  /**
   * bad debt on accounts that left none in the liquidation-only run (zero for that run): those it liquidated
   * (`liquidatedThere`: kept in the market by early reduction, bankrupt later) and those it never liquidated
   */
  newBadDebt: NewBadDebt;
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

export interface RunSpec {
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
      marginRatioExit: v.marginRatioExit ?? v.marginRatioThreshold ?? opts.marginRatioExit ?? threshold,
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

/** What every run of one backtest shares: the scenario, its market paths and population. */
export interface RunContext {
  scenario: string;
  accounts: number;
  seed: number;
  loaded: ReturnType<typeof loadScenario>;
  market: ReturnType<typeof buildMarket>;
  /** USD */
  fundStart: number;
  scorer?: PdScorer;
  constantPd?: number;
  lateMinutes?: number;
}

/** One run's outcome as plain data (it crosses a worker-thread boundary when runs go in parallel). */
export interface RunOutcome {
  measures: RunMeasures;
  liquidatedAccounts: string[];
  reducedAccounts: string[];
  /** USD per account */
  reducedNotionalByAccount: [string, number][];
  /** USD per account */
  reductionCostByAccount: [string, number][];
  /** USD per account: the bad debt its bankruptcies left */
  badDebtByAccount: [string, number][];
  /** [ts, USD] */
  fundPath: [number, number][];
  /** [minute ts, USD] */
  liquidationsPerMinute: [number, number][];
  /** accounts restricted to reduce-only at least once */
  restricted: string[];
  conservation: ConservationResult;
  summary: SimulationSummary;
  attribution?: BadDebtAttribution;
  /** the engine's looks within `observeWindow` (ms, [from, to)) */
  observations: EngineObservation[];
}

export function runContext(
  opts: Pick<BacktestOptions, 'scenario' | 'accounts' | 'seed' | 'scorer' | 'constantPd' | 'lateMinutes'>,
): RunContext {
  const loaded = loadScenario(opts.scenario);
  return {
    scenario: opts.scenario,
    accounts: opts.accounts,
    seed: opts.seed,
    loaded,
    market: buildMarket(loaded, opts.seed, opts.accounts),
    fundStart: loaded.scenario.insuranceFundPerAccount * opts.accounts,
    ...(opts.scorer ? { scorer: opts.scorer } : {}),
    ...(opts.constantPd !== undefined ? { constantPd: opts.constantPd } : {}),
    ...(opts.lateMinutes !== undefined ? { lateMinutes: opts.lateMinutes } : {}),
  };
}

/** Simulates one run: the venue with the run's risk engine (none for liquidation-only) in the loop. */
export async function executeRun(
  ctx: RunContext,
  run: RunSpec,
  observeWindow: readonly [number, number] | null,
  onMinute?: (minute: number, minutes: number) => void,
): Promise<RunOutcome> {
  const { policy, policyConfig } = run;
  let source: PdSource | undefined;
  if (policy === 'predictive') {
    if (ctx.constantPd !== undefined) source = { kind: 'constant', pd: ctx.constantPd };
    else if (ctx.scorer) source = { kind: 'model', scorer: ctx.scorer };
    else throw new BacktestInputError('the predictive policy needs a model (--model DIR)');
  } else if (policy === 'margin-ratio')
    source = {
      kind: 'margin-ratio',
      threshold: run.marginRatioThreshold,
      exitThreshold: run.marginRatioExit,
    };
  const tracker = source
    ? new AttributionTracker({
        pdReduce: policyConfig.pdReduce,
        healthyRatio: policyConfig.marginRatioWatch,
        ...(ctx.lateMinutes !== undefined ? { lateMinutes: ctx.lateMinutes } : {}),
      })
    : undefined;
  const collector = new MeasureCollector(
    ctx.fundStart,
    tracker ? (account, ts, usd) => tracker.badDebt(account, ts, usd) : undefined,
  );
  const conservation = new ConservationTracker(ctx.fundStart);
  const observations: EngineObservation[] = [];
  const engine = source
    ? createRiskEngine(
        source,
        policyConfig,
        observeWindow
          ? (o) => {
              if (o.ts >= observeWindow[0] && o.ts < observeWindow[1]) observations.push(o);
            }
          : undefined,
        tracker ? (ts, account, signal, decision) => tracker.look(ts, account, signal, decision) : undefined,
      )
    : undefined;
  const summary = await simulate(ctx.loaded, {
    accounts: ctx.accounts,
    seed: ctx.seed,
    market: ctx.market,
    ...(engine ? { riskEngine: engine.engine } : {}),
    sink: {
      write: (ev) => {
        collector.add(ev);
        conservation.add(ev);
        engine?.pipeline.apply(ev);
      },
    },
    ...(onMinute ? { onMinute: (m: number, n: number) => onMinute(m + 1, n) } : {}),
  });
  return {
    measures: collector.m,
    liquidatedAccounts: [...collector.liquidatedAccounts],
    reducedAccounts: [...collector.reducedAccounts],
    reducedNotionalByAccount: [...collector.reducedNotionalByAccount],
    reductionCostByAccount: [...collector.reductionCostByAccount],
    badDebtByAccount: [...collector.badDebtByAccount],
    fundPath: collector.fundPath,
    liquidationsPerMinute: collector.liquidationsPerMinute(),
    restricted: [...(engine?.restricted ?? [])],
    conservation: conservation.result(),
    summary,
    ...(tracker ? { attribution: tracker.result() } : {}),
    observations,
  };
}

/** Runs the early-reducing runs, at most `jobs` at a time; outcomes in run order. */
export type RunExecutor = (
  runs: readonly RunSpec[],
  /** the window of looks the run at `index` (of `runs`) keeps, or null */
  observeWindow: (index: number) => readonly [number, number] | null,
) => Promise<RunOutcome[]>;

export async function runBacktest(opts: BacktestOptions): Promise<BacktestResult> {
  const runs = runSpecs(opts);
  const jobs = opts.jobs ?? 1;
  const needsModel = runs.some((r) => r.policy === 'predictive') && opts.constantPd === undefined;
  // the workers' model, read once before any run: every worker builds it from these bytes, whatever
  // happens to the directory later (training replaces a model directory by rename). A model that cannot be
  // read fails the predictive runs, as a worker that cannot build it does
  let model: ModelFiles | undefined;
  let modelError: string | undefined;
  if (needsModel && opts.modelDir !== undefined && Number.isInteger(jobs) && jobs > 1) {
    try {
      model = typeof opts.modelDir === 'string' ? await readModelFiles(opts.modelDir) : opts.modelDir;
    } catch (e) {
      modelError = (e as Error).message;
    }
  }
  const executor =
    jobs === 1
      ? undefined
      : parallelExecutor({
          jobs,
          scenario: opts.scenario,
          accounts: opts.accounts,
          seed: opts.seed,
          ...(model !== undefined ? { model } : {}),
          ...(modelError !== undefined ? { modelError } : {}),
          ...(opts.constantPd !== undefined ? { constantPd: opts.constantPd } : {}),
          ...(opts.lateMinutes !== undefined ? { lateMinutes: opts.lateMinutes } : {}),
          ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
        });
  if (needsModel && !(executor ? opts.modelDir : opts.scorer))
    throw new BacktestInputError('the predictive policy needs a model (--model DIR)');
  const ctx = runContext(opts);
  const { market, fundStart } = ctx;
  const progress = (run: RunSpec) =>
    opts.onProgress ? (m: number, n: number) => opts.onProgress?.(run.label, m, n) : undefined;

  // the reference first: the crash minute (its peak liquidation minute) sets the window of pd kept
  const refSpec = runs[0] as RunSpec;
  const refOutcome = await executeRun(ctx, refSpec, null, progress(refSpec));
  opts.onReference?.({
    scenario: ctx.loaded.scenario.name,
    minutes: market.minutes,
    badDebt: refOutcome.measures.badDebt,
    liquidations: refOutcome.measures.liquidations,
    liquidatedNotional: refOutcome.measures.liquidatedNotional,
  });
  let crashTs: number | null = null;
  let peak = 0;
  for (const [ts, v] of refOutcome.liquidationsPerMinute)
    if (v > peak) {
      peak = v;
      crashTs = ts;
    }
  // the pd before the crash comes from the first predictive run
  const firstPredictive = runs.findIndex((r) => r.policy === 'predictive');
  const windowOf = (i: number): readonly [number, number] | null =>
    crashTs !== null && i + 1 === firstPredictive ? [crashTs - 3_600_000, crashTs] : null;
  const rest = runs.slice(1);
  const outcomes = [
    refOutcome,
    ...(executor
      ? await executor(rest, windowOf)
      : await sequential(rest, (run, i) => executeRun(ctx, run, windowOf(i), progress(run)))),
  ];

  const ref = refOutcome;
  const refLiquidated = new Set(ref.liquidatedAccounts);
  const refBadDebt = ref.measures.badDebt;
  const refBadDebtByAccount = new Map(ref.badDebtByAccount);
  const results: PolicyResult[] = [];
  const insuranceFund: Record<string, [number, number][]> = {};
  const liquidationsPerMinute: Record<string, [number, number][]> = {};
  const attribution: Record<string, BadDebtAttribution> = {};
  runs.forEach((run, i) => {
    const o = outcomes[i] as RunOutcome;
    const reducedNotional = new Map(o.reducedNotionalByAccount);
    const reductionCost = new Map(o.reductionCostByAccount);
    let falseAlarms = 0;
    let falseAlarmNotional = 0;
    let falseAlarmCost = 0;
    for (const a of o.reducedAccounts) {
      if (refLiquidated.has(a)) continue;
      falseAlarms++;
      falseAlarmNotional += reducedNotional.get(a) ?? 0;
      falseAlarmCost += reductionCost.get(a) ?? 0;
    }
    let restrictedFalseAlarms = 0;
    for (const a of o.restricted) if (!refLiquidated.has(a)) restrictedFalseAlarms++;
    assertRunConsistent(run.label, o.measures, o.conservation, o.summary);
    const liquidated = new Set(o.liquidatedAccounts);
    let saved = 0;
    for (const a of refLiquidated) if (!liquidated.has(a)) saved++;
    results.push({
      policy: run.policy,
      ...(run.variant ? { label: run.label } : {}),
      ...o.measures,
      falseAlarms,
      falseAlarmNotional,
      falseAlarmCost,
      saved,
      newBadDebt: newBadDebt(refLiquidated, refBadDebtByAccount, o.badDebtByAccount),
      restrictedFalseAlarms,
      badDebtAvoided:
        run.policy === 'liquidation-only' || refBadDebt <= 0 ? null : 1 - o.measures.badDebt / refBadDebt,
      conservation: o.conservation,
      summary: o.summary,
    });
    insuranceFund[run.label] = [[market.startMs, fundStart], ...o.fundPath];
    liquidationsPerMinute[run.label] = o.liquidationsPerMinute;
    if (o.attribution) attribution[run.label] = o.attribution;
  });

  const preCrash = { liquidated: [] as number[], survived: [] as number[] };
  for (const o of outcomes[firstPredictive]?.observations ?? [])
    o.accounts.forEach((a, i) => {
      (refLiquidated.has(a) ? preCrash.liquidated : preCrash.survived).push(o.pd[i] as number);
    });
  return {
    scenario: ctx.loaded.scenario.name,
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

async function sequential<T, R>(items: readonly T[], f: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out: R[] = [];
  for (let i = 0; i < items.length; i++) out.push(await f(items[i] as T, i));
  return out;
}
