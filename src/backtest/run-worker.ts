/**
 * A backtest run in a worker thread (`parallelExecutor`): rebuilds the scenario's market and population from
 * (scenario, accounts, seed), builds the model itself when the run needs one (a scorer cannot cross threads;
 * `model` is the model directory's files as `runBacktest` read them when the backtest started),
 * runs `executeRun` and posts its plain-data outcome. Messages: `{type: 'progress', minute, minutes}`, then
 * `{type: 'done', outcome}` or `{type: 'error', message}`.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { ModelFiles } from '../model/model-files.js';
import { loadScorer } from '../model/scorer.js';
import type { PdScorer } from '../model/types.js';
import { executeRun, type RunSpec, runContext } from './run.js';

export interface RunWorkerData {
  entry: string;
  scenario: string;
  accounts: number;
  seed: number;
  run: RunSpec;
  observeWindow: [number, number] | null;
  lateMinutes?: number;
  constantPd?: number;
  /** the model of a predictive run without constantPd, as read when the backtest started */
  model?: ModelFiles;
}

const port = parentPort;
if (!port) throw new Error('run-worker must run in a worker thread');
const data = workerData as RunWorkerData;
let scorer: (PdScorer & { close(): Promise<void> }) | undefined;
try {
  if (data.run.policy === 'predictive' && data.constantPd === undefined) {
    if (!data.model) throw new Error('the predictive policy needs a model (--model DIR)');
    // a run scores one minute's book at a time (under the pool's batch size): in-process
    scorer = await loadScorer(data.model, { workers: 0 });
  }
  const ctx = runContext({
    scenario: data.scenario,
    accounts: data.accounts,
    seed: data.seed,
    ...(scorer ? { scorer } : {}),
    ...(data.constantPd !== undefined ? { constantPd: data.constantPd } : {}),
    ...(data.lateMinutes !== undefined ? { lateMinutes: data.lateMinutes } : {}),
  });
  const outcome = await executeRun(ctx, data.run, data.observeWindow, (minute, minutes) => {
    if (minute % 10 === 0 || minute === minutes) port.postMessage({ type: 'progress', minute, minutes });
  });
  port.postMessage({ type: 'done', outcome });
} catch (e) {
  port.postMessage({ type: 'error', message: (e as Error).message });
} finally {
  await scorer?.close();
}
