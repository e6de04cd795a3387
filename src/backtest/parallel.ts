/**
 * Runs a backtest's early-reducing runs in worker threads, at most `jobs` at a time. The runs are
 * independent simulations of the same seed, so the outcomes are those of the in-process runs (tested equal);
 * only the wall time changes. Each worker rebuilds the market and loads the model itself, from a private copy of
 * the model directory's files as read when the executor was made (the start of the backtest): a model
 * directory replaced during the run (training swaps one in by rename) does not reach the later runs.
 */
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { BacktestInputError } from './policies.js';
import type { RunExecutor, RunOutcome, RunSpec } from './run.js';
import type { RunWorkerData } from './run-worker.js';

export interface ParallelOptions {
  /** worker threads running at once (>= 1) */
  jobs: number;
  scenario: string;
  accounts: number;
  seed: number;
  /** model directory for predictive runs (a scorer object cannot cross threads) */
  modelDir?: string;
  constantPd?: number;
  lateMinutes?: number;
  /** `run` is the run's label */
  onProgress?: (run: string, minute: number, minutes: number) => void;
}

/** The files a model load reads: metadata.json, model.json and the weight files its manifest names. */
interface ModelSnapshot {
  files: Map<string, Buffer>;
}

function snapshotModel(dir: string): ModelSnapshot {
  const files = new Map<string, Buffer>();
  const read = (name: string) => {
    if (name !== basename(name)) throw new Error(`${join(dir, name)}: a weight path outside the directory`);
    files.set(name, readFileSync(join(dir, name)));
  };
  read('metadata.json');
  read('model.json');
  const manifest = (
    JSON.parse((files.get('model.json') as Buffer).toString('utf8')) as {
      weightsManifest?: { paths?: unknown }[];
    }
  ).weightsManifest;
  for (const group of Array.isArray(manifest) ? manifest : [])
    for (const p of Array.isArray(group?.paths) ? group.paths : []) if (typeof p === 'string') read(p);
  return { files };
}

type Message =
  | { type: 'progress'; minute: number; minutes: number }
  | { type: 'done'; outcome: RunOutcome }
  | { type: 'error'; message: string };

export function parallelExecutor(opts: ParallelOptions): RunExecutor {
  if (!Number.isInteger(opts.jobs) || opts.jobs < 1)
    throw new BacktestInputError(`jobs: ${opts.jobs} is not a whole number >= 1`);
  // the model as it is now, once: every worker loads these bytes, whatever happens to the directory later
  let snapshot: ModelSnapshot | undefined;
  let snapshotError: string | undefined;
  if (opts.modelDir !== undefined && opts.constantPd === undefined) {
    try {
      snapshot = snapshotModel(opts.modelDir);
    } catch (e) {
      snapshotError = `cannot read the model at ${opts.modelDir}: ${(e as Error).message}`;
    }
  }
  return async (runs, observeWindow) => {
    const outcomes: RunOutcome[] = new Array(runs.length);
    const workers = new Set<Worker>();
    let next = 0;
    let failed = false;
    let copy: string | undefined;
    const lane = async (): Promise<void> => {
      while (!failed && next < runs.length) {
        const i = next++;
        outcomes[i] = await inWorker(runs[i] as RunSpec, observeWindow(i), workers, copy);
      }
    };
    try {
      if (snapshot && runs.some((r) => r.policy === 'predictive')) {
        copy = await mkdtemp(join(tmpdir(), 'preempt-model-'));
        for (const [name, bytes] of snapshot.files) await writeFile(join(copy, name), bytes);
      }
      await Promise.all(Array.from({ length: Math.min(opts.jobs, runs.length) }, lane));
    } catch (e) {
      failed = true;
      await Promise.all([...workers].map((w) => w.terminate()));
      throw e;
    } finally {
      if (copy) await rm(copy, { recursive: true, force: true });
    }
    return outcomes;
  };

  function inWorker(
    run: RunSpec,
    observeWindow: readonly [number, number] | null,
    workers: Set<Worker>,
    modelCopy: string | undefined,
  ): Promise<RunOutcome> {
    if (run.policy === 'predictive' && snapshotError !== undefined)
      return Promise.reject(new Error(`${run.label}: ${snapshotError}`));
    const data: RunWorkerData = {
      entry: new URL('./run-worker.ts', import.meta.url).href,
      scenario: opts.scenario,
      accounts: opts.accounts,
      seed: opts.seed,
      run,
      observeWindow: observeWindow ? [observeWindow[0], observeWindow[1]] : null,
      ...(opts.lateMinutes !== undefined ? { lateMinutes: opts.lateMinutes } : {}),
      ...(opts.constantPd !== undefined ? { constantPd: opts.constantPd } : {}),
      ...(opts.modelDir !== undefined ? { modelDir: modelCopy ?? opts.modelDir } : {}),
      ...(opts.modelDir !== undefined && modelCopy !== undefined ? { modelSource: opts.modelDir } : {}),
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
