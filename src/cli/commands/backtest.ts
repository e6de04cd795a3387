/**
 * `preempt backtest`: replay a scenario with each policy on the same seed and traders and compare them;
 * with `--sweep`, sweep each early-warning signal's threshold and compare their false-alarm frontiers.
 */
import { availableParallelism } from 'node:os';
import { MultiBar, Presets, SingleBar } from 'cli-progress';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { POLICY_NAMES, parsePolicies } from '../../backtest/policies.js';
import { formatTable, writeBacktestReport } from '../../backtest/report.js';
import { runBacktest } from '../../backtest/run.js';
import { DEFAULT_PD_THRESHOLDS, DEFAULT_RATIO_THRESHOLDS, runSweep } from '../../backtest/sweep.js';
import {
  formatSweepTable,
  loadReusableSweep,
  predictiveSettingsOf,
  writeSweepReport,
} from '../../backtest/sweep-report.js';
import { type PolicyConfig, resolvePolicyConfig } from '../../margin/index.js';
import { type ModelFiles, readModelFiles } from '../../model/model-files.js';
import { loadScorer, type ModelScorer } from '../../model/scorer.js';
import { MAX_SEED } from '../../sim/random.js';
import { checkOutDir, replaceFilesIn } from '../atomic-file.js';
import { parseIntArg } from '../duration.js';

interface BacktestCliOptions {
  scenario: string;
  accounts: number;
  seed: number;
  model: string;
  policy: string[];
  out?: string;
  marginRatio: string;
  marginRatioExit?: string;
  /** parsed and checked when the options are read (parsePolicyConfig) */
  policyConfig?: Partial<PolicyConfig>;
  sweep?: boolean;
  pdThresholds: number[];
  ratioThresholds?: number[];
  gates?: number[];
  ratioExitFactors?: number[];
  ratioFrom?: string;
  predictiveFrom?: string;
  lateMinutes: number;
  jobs: number;
  progress: boolean;
}

/** `--policy-config`: a JSON object of known policy fields, each valid (resolvePolicyConfig's checks). */
export function parsePolicyConfig(text: string): Partial<PolicyConfig> {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new InvalidArgumentError(`--policy-config: not JSON: ${(e as Error).message}`);
  }
  try {
    resolvePolicyConfig(v as Partial<PolicyConfig>);
  } catch (e) {
    throw new InvalidArgumentError(`--policy-config: ${(e as Error).message}`);
  }
  return v as Partial<PolicyConfig>;
}

/** An integer option within [min, max], named in its error. */
export function intIn(name: string, min: number, max: number): (text: string) => number {
  return (text) => {
    const n = Number(text);
    if (!Number.isInteger(n) || n < min || n > max)
      throw new InvalidArgumentError(`${name}: "${text}" is not an integer from ${min} to ${max}`);
    return n;
  };
}

export function parseList(text: string): number[] {
  if (text.trim() === '') return [];
  return text.split(',').map((t) => {
    const v = Number(t.trim());
    if (t.trim() === '' || !Number.isFinite(v))
      throw new InvalidArgumentError(`"${text}" is not a comma-separated list of numbers`);
    return v;
  });
}

export function register(program: Command): void {
  program
    .command('backtest')
    .description('compare liquidation-only, predictive and a non-ML early-warning rule on a scenario')
    .requiredOption('--scenario <name|file>', 'named scenario or scenario file')
    .option('--accounts <n>', 'simulated accounts', intIn('--accounts', 1, 10_000_000), 2000)
    .option('--seed <n>', 'seed (0 to 2^32 - 1)', intIn('--seed', 0, MAX_SEED), 1)
    .option('--model <dir>', 'model directory for the predictive policy', 'models/default')
    .option('--policy <names...>', `policies (${POLICY_NAMES.join(', ')})`, [...POLICY_NAMES])
    .option('--margin-ratio <x>', 'threshold of the margin-ratio rule', '1.5')
    .option(
      '--margin-ratio-exit <x>',
      'equity/MM at which an armed margin-ratio rule disarms (>= --margin-ratio; default: --margin-ratio)',
    )
    .option(
      '--policy-config <json>',
      'margin-core policy threshold overrides, e.g. \'{"pdReduce":0.1}\'',
      parsePolicyConfig,
    )
    .option(
      '--out <dir>',
      'write report.json, report.md and charts here (with --sweep: sweep.json, sweep.md, frontier.svg)',
    )
    .option(
      '--late-minutes <n>',
      'bad-debt attribution: a first REDUCE less than this before a bankruptcy is late',
      intIn('--late-minutes', 0, 1_000_000),
      15,
    )
    .option(
      '--sweep',
      'sweep the thresholds of both signals instead (liquidation-only runs once; --policy and --margin-ratio are ignored)',
    )
    .option(
      '--pd-thresholds <list>',
      "with --sweep: pdReduce values of the predictive policy (pdWatch := min(pdWatch, pdReduce/2), pdHysteresis := min(pdHysteresis, 0.15 pdReduce)); the policy config's own pdReduce and gate are run too when the grid lacks them; empty for none",
      parseList,
      DEFAULT_PD_THRESHOLDS,
    )
    .option(
      '--ratio-thresholds <list>',
      `with --sweep: equity/MM thresholds of the margin-ratio rule; empty for none (default: with --ratio-from and no --ratio-exit-factors, every run of the rule in that sweep; otherwise ${DEFAULT_RATIO_THRESHOLDS.join(',')})`,
      parseList,
    )
    .option(
      '--gates <list>',
      "with --sweep: margin-ratio gates of the predictive policy, each with every pd threshold (reduceGateMarginRatio: the reduce tier arms only while equity/MM is below it; 0 for none; default: the policy config's)",
      parseList,
    )
    .option(
      '--ratio-exit-factors <list>',
      'with --sweep: exit factors of the margin-ratio rule (>= 1), each with every ratio threshold T: armed at equity/MM < T, disarmed at >= T x factor (default 1: no hysteresis)',
      parseList,
    )
    .option(
      '--ratio-from <sweep.json>',
      "with --sweep: take the margin-ratio runs from an earlier sweep of the same scenario, accounts, seed and policy config instead of running them (they do not use the model; refused unless its liquidation-only run equals this one's); without --ratio-thresholds and --ratio-exit-factors, all of them",
    )
    .addOption(
      new Option(
        '--predictive-from <sweep.json>',
        "with --sweep: run the predictive settings of an earlier sweep, each pdReduce and gate it ran, instead of --pd-thresholds x --gates (with --ratio-from the same file: that sweep again with this model; the policy config's own pdReduce and gate are run too when it lacks them)",
      ).conflicts(['pdThresholds', 'gates']),
    )
    .option(
      '--jobs <n>',
      'runs after the liquidation-only reference going at once, each in a worker thread (1: one after the other); same results',
      parseIntArg,
      Math.min(2, availableParallelism()),
    )
    .option('--no-progress', 'no progress bars on stderr')
    .action(async (opts: BacktestCliOptions) => {
      if (opts.out) await checkOutDir(opts.out);
      if (opts.sweep) return sweep(opts);
      const policies = parsePolicies(opts.policy);
      const model = await modelFor(opts, policies.includes('predictive'));
      const { onProgress, stop } = progressDisplay(opts.progress ? opts.jobs : 0);
      try {
        const result = await runBacktest({
          scenario: opts.scenario,
          accounts: opts.accounts,
          seed: opts.seed,
          policies,
          ...model.options,
          jobs: opts.jobs,
          marginRatioThreshold: Number(opts.marginRatio),
          ...(opts.marginRatioExit !== undefined ? { marginRatioExit: Number(opts.marginRatioExit) } : {}),
          ...(opts.policyConfig ? { policyConfig: opts.policyConfig } : {}),
          lateMinutes: opts.lateMinutes,
          onProgress,
        });
        stop();
        process.stdout.write(`${formatTable(result)}\n`);
        if (opts.out) {
          await replaceFilesIn(opts.out, (staging) => writeBacktestReport(staging, result));
          process.stderr.write(`report written to ${opts.out}\n`);
        }
      } finally {
        stop();
        await model.scorer?.close();
      }
    });
}

/**
 * The model of the predictive runs: in this thread a loaded scorer; with --jobs > 1 its files, read once here
 * and built once as a check (so that a bad model fails before any run), then sent to every worker as read.
 */
async function modelFor(
  opts: BacktestCliOptions,
  needed: boolean,
): Promise<{
  scorer?: ModelScorer;
  options: { scorer: ModelScorer } | { modelDir: ModelFiles } | Record<string, never>;
}> {
  if (!needed) return { options: {} };
  if (opts.jobs > 1) {
    const files = await readModelFiles(opts.model);
    await (await loadScorer(files, { workers: 0 })).close();
    return { options: { modelDir: files } };
  }
  const scorer = await loadScorer(opts.model);
  return { scorer, options: { scorer } };
}

const BAR_FORMAT = '{policy} |{bar}| {value}/{total} min | ETA {eta_formatted}';
const BAR_OPTIONS = {
  format: BAR_FORMAT,
  stream: process.stderr,
  hideCursor: true,
  // also reports when stderr is a file
  noTTYOutput: true,
  notTTYSchedule: 10_000,
};

/**
 * Progress on stderr: with one job the runs go one after the other, one bar restarted for each; with more,
 * one bar per run in progress (removed when its run ends); 0 (--no-progress): none.
 */
export function progressDisplay(jobs: number): {
  onProgress: (run: string, minute: number, minutes: number) => void;
  stop: () => void;
} {
  if (jobs === 0) return { onProgress: () => {}, stop: () => {} };
  if (jobs <= 1) {
    const bar = new SingleBar(BAR_OPTIONS, Presets.shades_classic);
    let current = '';
    return {
      onProgress: (run, minute, minutes) => {
        if (run !== current) {
          if (current) bar.stop();
          current = run;
          bar.start(minutes, 0, { policy: run.padEnd(22) });
        }
        if (minute % 10 === 0 || minute === minutes) bar.update(minute);
      },
      stop: () => bar.stop(),
    };
  }
  const multi = new MultiBar(BAR_OPTIONS, Presets.shades_classic);
  const bars = new Map<string, ReturnType<MultiBar['create']>>();
  return {
    onProgress: (run, minute, minutes) => {
      let bar = bars.get(run);
      if (!bar) {
        bar = multi.create(minutes, 0, { policy: run.padEnd(22) });
        bars.set(run, bar);
      }
      if (minute % 10 === 0 || minute === minutes) bar.update(minute);
      if (minute === minutes) multi.remove(bar);
    },
    stop: () => multi.stop(),
  };
}

async function sweep(opts: BacktestCliOptions): Promise<void> {
  const ratioFrom = opts.ratioFrom
    ? { source: opts.ratioFrom, sweep: await loadReusableSweep(opts.ratioFrom) }
    : undefined;
  // one read when both name the same file (refresh-backtests.sh: that sweep again with another model)
  const predictive = opts.predictiveFrom
    ? predictiveSettingsOf(
        ratioFrom && opts.predictiveFrom === opts.ratioFrom
          ? ratioFrom.sweep
          : await loadReusableSweep(opts.predictiveFrom, '--predictive-from'),
        opts.predictiveFrom,
      )
    : undefined;
  const model = await modelFor(opts, (predictive ?? opts.pdThresholds).length > 0);
  const { onProgress, stop } = progressDisplay(opts.progress ? opts.jobs : 0);
  try {
    const result = await runSweep({
      scenario: opts.scenario,
      accounts: opts.accounts,
      seed: opts.seed,
      ...model.options,
      jobs: opts.jobs,
      ...(opts.policyConfig ? { policyConfig: opts.policyConfig } : {}),
      ...(predictive ? { pdThresholds: [], predictive } : { pdThresholds: opts.pdThresholds }),
      ...(opts.ratioThresholds ? { ratioThresholds: opts.ratioThresholds } : {}),
      ...(opts.gates ? { gates: opts.gates } : {}),
      ...(opts.ratioExitFactors ? { ratioExitFactors: opts.ratioExitFactors } : {}),
      lateMinutes: opts.lateMinutes,
      ...(ratioFrom ? { ratioFrom } : {}),
      onProgress,
    });
    stop();
    process.stdout.write(`${formatSweepTable(result)}\n`);
    if (opts.out) {
      await replaceFilesIn(opts.out, (staging) => writeSweepReport(staging, result));
      process.stderr.write(`sweep written to ${opts.out}\n`);
    }
  } finally {
    stop();
    await model.scorer?.close();
  }
}
