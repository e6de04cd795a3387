/**
 * Backtest wall time: the three policies (liquidation-only, predictive with the shipped model, margin-ratio)
 * on the flash-crash day (1,440 minutes), BENCH_BACKTEST_ACCOUNTS accounts (default 2,000), as simulated
 * account-minutes per second over all runs, two ways in the same process:
 *  - `--jobs 2`: the predictive and margin-ratio runs in two worker threads at once, after the reference;
 *  - baseline `--jobs 1`: every run one after the other in this thread.
 * Also the liquidation-only run alone (the simulator without a risk engine), from the in-process backtest's
 * own progress, to show what the risk engine costs per run. The two backtests' reports are compared: the
 * bench fails if they differ.
 */
import { join } from 'node:path';
import { reportJson } from '../src/backtest/report.js';
import { type BacktestOptions, runBacktest } from '../src/backtest/run.js';
import { loadScorer } from '../src/model/scorer.js';
import { printRatio } from './report.js';

const MODEL = join(import.meta.dirname, '../models/default');

export async function run(): Promise<void> {
  const accounts = Number(process.env.BENCH_BACKTEST_ACCOUNTS ?? 2_000);
  const base: BacktestOptions = {
    scenario: 'flash-crash',
    accounts,
    seed: 1,
    policies: ['liquidation-only', 'predictive', 'margin-ratio'],
  };
  const scorer = await loadScorer(MODEL, { workers: 0 });
  let referenceEnd = 0;
  const t0 = performance.now();
  let sequential: ReturnType<typeof reportJson>;
  let minutes = 0;
  try {
    const r = await runBacktest({
      ...base,
      scorer,
      onProgress: (run, minute, total) => {
        if (run === 'liquidation-only' && minute === total) referenceEnd = performance.now();
      },
    });
    minutes = r.minutes;
    sequential = reportJson(r);
  } finally {
    await scorer.close();
  }
  const sequentialMs = performance.now() - t0;
  const t1 = performance.now();
  const parallel = reportJson(await runBacktest({ ...base, jobs: 2, modelDir: MODEL }));
  const parallelMs = performance.now() - t1;
  if (JSON.stringify(parallel) !== JSON.stringify(sequential))
    throw new Error('the --jobs 2 backtest report differs from the in-process one');

  const accountMinutes = accounts * minutes * 3; // three runs
  printRatio(
    `backtest, 3 policies, ${accounts} accts x ${minutes} min, --jobs 2`,
    accountMinutes / (parallelMs / 1000),
    '--jobs 1 (one run after the other)',
    accountMinutes / (sequentialMs / 1000),
    'account-minutes/s',
  );
  const referenceMs = referenceEnd - t0;
  const riskRunMs = (sequentialMs - referenceMs) / 2;
  printRatio(
    'one run with the risk engine (mean of 2, in-process)',
    (accounts * minutes) / (riskRunMs / 1000),
    'liquidation-only run, incl. market build',
    (accounts * minutes) / (referenceMs / 1000),
    'account-minutes/s',
  );
  console.log(
    `  wall: --jobs 2 ${(parallelMs / 1000).toFixed(1)} s, --jobs 1 ${(sequentialMs / 1000).toFixed(1)} s (reference run ${(referenceMs / 1000).toFixed(1)} s)`,
  );
}
