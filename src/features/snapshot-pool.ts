/**
 * Worker threads for full-book snapshots: `FeaturePipeline.snapshotParallel` splits the rows into one
 * contiguous range per thread (the calling thread takes one range itself) and every thread writes its rows
 * into one matrix on a SharedArrayBuffer. Start it once, reuse it, close it.
 */
import { Worker } from 'node:worker_threads';
import type { RowsJob } from './rows-job.js';

export class SnapshotWorkerError extends Error {
  readonly code = 'SNAPSHOT_WORKER_FAILED';
  constructor(detail: string) {
    super(`snapshot worker failed: ${detail}`);
    this.name = 'SnapshotWorkerError';
  }
}

interface Pending {
  resolve: () => void;
  reject: (e: Error) => void;
}

class SnapshotThread {
  private nextId = 0;
  private readonly pending = new Map<number, Pending>();
  readonly ready: Promise<void>;

  constructor(private readonly worker: Worker) {
    this.ready = new Promise((resolve, reject) => {
      worker.once('error', reject);
      const onReady = (msg: { ready?: boolean }) => {
        if (msg.ready !== true) return;
        worker.off('message', onReady);
        resolve();
      };
      worker.on('message', onReady);
    });
    worker.on('message', (msg: { id?: number; error?: string }) => {
      if (msg.id === undefined) return;
      const p = this.pending.get(msg.id);
      if (!p) return;
      this.pending.delete(msg.id);
      if (msg.error === undefined) p.resolve();
      else p.reject(new SnapshotWorkerError(msg.error));
    });
    worker.on('error', (e) => {
      for (const p of this.pending.values()) p.reject(new SnapshotWorkerError(e.message));
      this.pending.clear();
    });
  }

  run(job: RowsJob): Promise<void> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ id, job });
    });
  }

  terminate(): Promise<number> {
    return this.worker.terminate();
  }
}

export class SnapshotPool {
  private constructor(private readonly threads: SnapshotThread[]) {}

  /** `threads` worker threads (the caller's thread works too: use cores - 1). */
  static async start(threads: number): Promise<SnapshotPool> {
    if (!(Number.isInteger(threads) && threads >= 1))
      throw new RangeError(`threads must be an integer >= 1 (got ${threads})`);
    const bootstrap = new URL('./worker-bootstrap.mjs', import.meta.url);
    const entry = new URL('./snapshot-worker.ts', import.meta.url).href;
    const pool = new SnapshotPool(
      Array.from(
        { length: threads },
        () => new SnapshotThread(new Worker(bootstrap, { workerData: { entry } })),
      ),
    );
    try {
      await Promise.all(pool.threads.map((t) => t.ready));
    } catch (e) {
      await pool.close();
      throw e;
    }
    return pool;
  }

  get size(): number {
    return this.threads.length;
  }

  /** Run one job per thread (jobs.length <= size). */
  run(jobs: RowsJob[]): Promise<void> {
    if (jobs.length > this.threads.length)
      throw new RangeError(`${jobs.length} jobs for ${this.size} threads`);
    return Promise.all(jobs.map((j, k) => this.threads[k]!.run(j))).then(() => undefined);
  }

  async close(): Promise<void> {
    await Promise.all(this.threads.map((t) => t.terminate()));
  }
}
