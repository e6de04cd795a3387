/**
 * Small simulated histories for tests of the consumers of histories (training, scoring, backtest).
 */

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { simulate } from '../../src/sim/simulate.js';
import { JsonlFileSink } from '../../src/sim/sink.js';

export async function writeSimHistory(
  scenario: string,
  accounts: number,
  seed: number,
  path: string,
): Promise<string> {
  const sink = new JsonlFileSink(path);
  await simulate(scenario, { accounts, seed, sink });
  await sink.close();
  return path;
}

/** The three days the training tests read: a crash to train on, a second one, and a held-out one. */
export const TRAINING_DAYS = ['may-2021', 'flash-crash', 'black-thursday-2020'] as const;

/**
 * For the calling test file (or describe block): a temporary directory, removed afterwards, holding small
 * simulated histories of `scenarios` (200 accounts, seed 3), written before the tests run. `files` maps each
 * scenario to its path once they are written.
 */
export function useSimHistories(
  label: string,
  scenarios: readonly string[] = TRAINING_DAYS,
): { dir: string; files: Record<string, string> } {
  const dir = mkdtempSync(join(tmpdir(), `preempt-${label}-`));
  const files: Record<string, string> = {};
  beforeAll(async () => {
    for (const sc of scenarios) files[sc] = await writeSimHistory(sc, 200, 3, join(dir, `${sc}.jsonl.gz`));
  }, 120_000);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  return { dir, files };
}
