/**
 * Runs a backtest's early-reducing runs in worker threads, at most `jobs` at a time. The runs are
 * independent simulations of the same seed, so the outcomes are those of the in-process runs (tested equal);
 * only the wall time changes. Each worker rebuilds the market and builds the model itself, from the model
 * directory's files as `runBacktest` read them once at the start (`readModelFiles`: one consistent set,
 * digests checked): a model directory replaced during the run (training swaps one in by rename) does not
 * reach the later runs.
 */
import { Worker } from 'node:worker_threads';
import type { ModelFiles } from '../model/model-files.js';
import { BacktestInputError } from './policies.js';
import type { RunExecutor, RunOutcome, RunSpec } from './run.js';
import type { RunWorkerData } from './run-worker.js';

export interface ParallelOptions {
  /** worker threads running at once (>= 1) */
  jobs: number;
  scenario: string;
  accounts: number;
  seed: number;
  /** the model of predictive runs, as read at the start (a scorer object cannot cross threads) */
  model?: ModelFiles;
  /** why the model could not be read: the predictive runs fail with it */
  modelError?: string;
  constantPd?: number;
  lateMinutes?: number;
  /** `run` is the run's label */
  onProgress?: (run: string, minute: number, minutes: number) => void;
}

type Message =
  | { type: 'progress'; minute: number; minutes: number }
  | { type: 'done'; outcome: RunOutcome }
  | { type: 'error'; message: string };

export function parallelExecutor(opts: ParallelOptions): RunExecutor {
  if (!Number.isInteger(opts.jobs) || opts.jobs < 1)
    throw new BacktestInputError(`jobs: ${opts.jobs} is not a whole number >= 1`);
  return async (runs, observeWindow) => {
    const outcomes: RunOutcome[] = new Array(runs.length);
    const workers = new Set<Worker>();
    let next = 0;
    let failed = false;
    const lane = async (): Promise<void> => {
      while (!failed && next < runs.length) {
        const i = next++;
        outcomes[i] = await inWorker(runs[i] as RunSpec, observeWindow(i), workers);
      }
    };
    try {
      await Promise.all(Array.from({ length: Math.min(opts.jobs, runs.length) }, lane));
    } catch (e) {
      failed = true;
      await Promise.all([...workers].map((w) => w.terminate()));
      throw e;
    }
    return outcomes;
  };

  function inWorker(
    run: RunSpec,
    observeWindow: readonly [number, number] | null,
    workers: Set<Worker>,
  ): Promise<RunOutcome> {
    if (run.policy === 'predictive' && opts.modelError !== undefined)
      return Promise.reject(new Error(`${run.label}: ${opts.modelError}`));
    const data: RunWorkerData = {
      entry: new URL('./run-worker.ts', import.meta.url).href,
      scenario: opts.scenario,
      accounts: opts.accounts,
      seed: opts.seed,
      run,
      observeWindow: observeWindow ? [observeWindow[0], observeWindow[1]] : null,
      ...(opts.lateMinutes !== undefined ? { lateMinutes: opts.lateMinutes } : {}),
      ...(opts.constantPd !== undefined ? { constantPd: opts.constantPd } : {}),
      // only predictive runs build a model: the others are not sent its bytes
      ...(opts.model !== undefined && run.policy === 'predictive' ? { model: opts.model } : {}),
    };
    const worker = new Worker(new URL('../model/worker-bootstrap.mjs', import.meta.url), {
      workerData: data,
    });
    workers.add(worker);
    return new Promise<RunOutcome>((resolve, reject) => {
      let settled = false;
      const settle = (f: () => void) => {
        if (settled) return;
        settled = true;
        workers.delete(worker);
        f();
      };
      worker.on('message', (msg: Message) => {
        if (msg.type === 'progress') opts.onProgress?.(run.label, msg.minute, msg.minutes);
        else if (msg.type === 'done') settle(() => resolve(msg.outcome));
        else settle(() => reject(new Error(`${run.label}: ${msg.message}`)));
      });
      worker.on('error', (e) => settle(() => reject(e)));
      worker.on('exit', (code) =>
        settle(() =>
          reject(new Error(`${run.label}: the run's worker exited (code ${code}) before its result`)),
        ),
      );
    });
  }
}
