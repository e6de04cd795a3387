import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { reportJson } from '../../src/backtest/report.js';
import { type BacktestOptions, runBacktest } from '../../src/backtest/run.js';
import { loadScorer } from '../../src/model/scorer.js';

/** flash-crash cut to four hours (the same fall in 12 minutes) */
const SHORT_CRASH = join(import.meta.dirname, 'short-crash.json');
const MODEL = join(import.meta.dirname, '../../models/default');

const RUNS: BacktestOptions = {
  scenario: SHORT_CRASH,
  accounts: 120,
  seed: 4,
  policies: ['liquidation-only', 'predictive', 'margin-ratio'],
  variants: [{ label: 'ratio sticky', policy: 'margin-ratio', marginRatioThreshold: 3, marginRatioExit: 6 }],
};

describe('backtest: runs in worker threads', () => {
  it('gives the report of the in-process runs, with the shipped model loaded by each worker', async () => {
    const scorer = await loadScorer(MODEL, { workers: 0 });
    let inProcess: ReturnType<typeof reportJson>;
    try {
      inProcess = reportJson(await runBacktest({ ...RUNS, scorer }));
    } finally {
      await scorer.close();
    }
    const seen = new Set<string>();
    const parallel = await runBacktest({
      ...RUNS,
      jobs: 2,
      modelDir: MODEL,
      onProgress: (run, minute, minutes) => {
        if (minute === minutes) seen.add(run);
      },
    });
    expect(JSON.stringify(reportJson(parallel))).toBe(JSON.stringify(inProcess));
    // the predictive run did reduce (the comparison is not between two empty runs)
    expect(parallel.policies.find((p) => p.policy === 'predictive')!.reductions).toBeGreaterThan(0);
    expect(parallel.preCrashPd.liquidated.length + parallel.preCrashPd.survived.length).toBeGreaterThan(0);
    expect([...seen].sort()).toEqual(['liquidation-only', 'margin-ratio', 'predictive', 'ratio sticky']);
  }, 120_000);

  it('refuses a predictive run without a model directory, or a bad job count, before running anything', async () => {
    let minutes = 0;
    const onProgress = () => minutes++;
    await expect(runBacktest({ ...RUNS, jobs: 2, onProgress })).rejects.toThrow(/needs a model/);
    await expect(runBacktest({ ...RUNS, jobs: 0, onProgress })).rejects.toThrow(/jobs: 0/);
    expect(minutes).toBe(0);
  });

  it('fails with the run it was when a worker cannot load its model', async () => {
    await expect(
      runBacktest({
        ...RUNS,
        policies: ['liquidation-only', 'predictive'],
        variants: [],
        jobs: 2,
        modelDir: '/nonexistent/model',
      }),
    ).rejects.toThrow(/^predictive: /);
  }, 60_000);
});
