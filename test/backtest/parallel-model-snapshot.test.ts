import { renameSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { reportJson } from '../../src/backtest/report.js';
import { type BacktestOptions, runBacktest } from '../../src/backtest/run.js';
import { readMetadata, writeMetadata } from '../../src/model/artifacts.js';

const SHORT_CRASH = join(import.meta.dirname, 'short-crash.json');
const MODEL = join(import.meta.dirname, '../../models/default');
const FILES = ['metadata.json', 'model.json', 'weights.bin'];

const RUNS: BacktestOptions = {
  scenario: SHORT_CRASH,
  accounts: 30,
  seed: 4,
  policies: ['liquidation-only', 'predictive'],
  variants: [
    { label: 'predictive low', policy: 'predictive', policyConfig: { pdReduce: 0.1, pdWatch: 0.05 } },
  ],
  jobs: 2,
};

let root: string | undefined;
afterEach(async () => {
  if (root) await rm(root, { recursive: true, force: true });
  root = undefined;
});

/** DIR: a copy of the shipped model; NEXT: the same network with every weight zero (it loads, and scores otherwise) */
async function models(): Promise<{ dir: string; next: string }> {
  root = await mkdtemp(join(tmpdir(), 'preempt-snapshot-'));
  const dir = join(root, 'model');
  const next = join(root, 'model.next');
  await mkdir(dir);
  await mkdir(next);
  for (const f of FILES) {
    await copyFile(join(MODEL, f), join(dir, f));
    await copyFile(join(MODEL, f), join(next, f));
  }
  const weights = await readFile(join(MODEL, 'weights.bin'));
  await writeFile(join(next, 'weights.bin'), Buffer.alloc(weights.byteLength));
  // its metadata records the digests of its own network (a consistent model, not a damaged one)
  await writeMetadata(next, await readMetadata(next));
  return { dir, next };
}

describe('backtest --jobs: every worker scores with the model the run started with', () => {
  it('a model directory replaced (by rename) after the run started changes nothing', async () => {
    const { dir, next } = await models();
    const unchanged = reportJson(await runBacktest({ ...RUNS, modelDir: dir }));
    // the directory is swapped when the reference run (in this thread) ends: before any worker starts
    let swapped = false;
    const afterSwap = reportJson(
      await runBacktest({
        ...RUNS,
        modelDir: dir,
        onProgress: (run, minute, minutes) => {
          if (run !== 'liquidation-only' || minute !== minutes || swapped) return;
          swapped = true;
          // synchronous: the swap is complete before the reference run returns
          renameSync(dir, `${dir}.old`);
          renameSync(next, dir);
        },
      }),
    );
    expect(swapped).toBe(true);
    expect(JSON.stringify(afterSwap)).toBe(JSON.stringify(unchanged));
    // the swapped-in model does score otherwise (the comparison above is not vacuous)
    await rename(dir, next);
    await rename(`${dir}.old`, dir);
    const other = reportJson(await runBacktest({ ...RUNS, modelDir: next }));
    expect(JSON.stringify(other)).not.toBe(JSON.stringify(unchanged));
  }, 120_000);
});
