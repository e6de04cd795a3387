/**
 * A pool of scoring worker threads for full-book scoring. The rows are cut into slices (guided: large
 * first, smaller towards the end, each a whole number of scoring chunks) handed out as threads free up, so
 * a thread slowed down by other work on its core takes fewer slices instead of holding the others up.
 * Every thread has up to two slices queued so it never waits for a round trip.
 *
 * A matrix on a SharedArrayBuffer (as `snapshotParallel` produces) is read by the workers in place; any
 * other matrix is copied slice by slice into recycled transfer buffers, which come back with the results.
 * The caller's matrix is never modified.
 */
import { Worker } from 'node:worker_threads';
import { CHUNK_ROWS } from './predictor.js';

interface Slice {
  matrix: Float32Array;
  start: number;
  rows: number;
  job: Job;
}

interface Job {
  out: Float32Array;
  pending: number;
  failed: boolean;
  resolve: (pd: Float32Array) => void;
  reject: (e: Error) => void;
}

interface Reply {
  id?: number;
  pd?: Float32Array;
  input?: Float32Array;
  error?: string;
}

/** slices a thread has queued at once */
const DEPTH = 2;
/** the largest slice (rows); a transfer buffer holds one (32768 x 52 floats = 6.8 MB) */
const MAX_SLICE_ROWS = 4 * CHUNK_ROWS;

class ScoreThread {
  private nextId = 0;
  private readonly pending = new Map<number, Slice>();
  readonly ready: Promise<string>;
  /** false once the worker failed or exited: it gets no more slices */
  alive = true;

  constructor(
    private readonly worker: Worker,
    private readonly onReply: (thread: ScoreThread, slice: Slice, reply: Reply) => void,
    private readonly onError: (thread: ScoreThread, slices: Slice[], e: Error) => void,
  ) {
    this.ready = new Promise((resolve, reject) => {
      worker.once('error', reject);
      const onReady = (msg: { ready?: boolean; backend?: string; error?: string }) => {
        if (msg.ready === undefined) return;
        worker.off('message', onReady);
        if (msg.ready) resolve(msg.backend ?? 'unknown');
        else reject(new Error(`score worker failed to load the model: ${msg.error}`));
      };
      worker.on('message', onReady);
    });
    worker.on('message', (msg: Reply) => {
      if (msg.id === undefined) return;
      const slice = this.pending.get(msg.id);
      if (!slice) return;
      this.pending.delete(msg.id);
      this.onReply(this, slice, msg);
    });
    const lose = (e: Error) => {
      this.alive = false;
      const lost = [...this.pending.values()];
      this.pending.clear();
      this.onError(this, lost, e);
    };
    worker.on('error', lose);
    worker.on('exit', (code) => {
      if (this.alive) lose(new Error(`score worker exited (code ${code})`));
    });
  }

  get inFlight(): number {
    return this.pending.size;
  }

  send(slice: Slice, matrix: Float32Array, transfer: boolean): void {
    const id = this.nextId++;
    this.pending.set(id, slice);
    this.worker.postMessage({ id, matrix, rows: slice.rows }, transfer ? [matrix.buffer as ArrayBuffer] : []);
  }

  terminate(): Promise<number> {
    return this.worker.terminate();
  }
}

export class ScorePool {
  private readonly threads: ScoreThread[] = [];
  private readonly queue: Slice[] = [];
  /** transfer buffers back from the workers, for the next slices of unshared matrices */
  private readonly spare: ArrayBuffer[] = [];
  private closed = false;

  private constructor(readonly featureCount: number) {}

  static async start(modelDir: string, size: number, featureCount: number): Promise<ScorePool> {
    const bootstrap = new URL('./worker-bootstrap.mjs', import.meta.url);
    const entry = new URL('./score-worker.ts', import.meta.url).href;
    const pool = new ScorePool(featureCount);
    for (let i = 0; i < size; i++)
      pool.threads.push(
        new ScoreThread(
          new Worker(bootstrap, { workerData: { entry, modelDir } }),
          (t, s, r) => pool.onReply(t, s, r),
          (t, s, e) => pool.onError(t, s, e),
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

  /** Score rows across the pool; the caller's `matrix` is left intact. */
  score(matrix: Float32Array, rows: number): Promise<Float32Array> {
    const cols = this.featureCount;
    if (matrix.length < rows * cols)
      return Promise.reject(
        new RangeError(`matrix holds ${matrix.length} values, ${rows} rows need ${rows * cols}`),
      );
    if (this.closed) return Promise.reject(new Error('the score pool is closed'));
    if (rows === 0) return Promise.resolve(new Float32Array(0));
    return new Promise((resolve, reject) => {
      const job: Job = { out: new Float32Array(rows), pending: 0, failed: false, resolve, reject };
      // guided slices: about a quarter of what each thread has left, in whole chunks, large to small
      const threads = this.threads.length;
      for (let start = 0; start < rows; ) {
        const left = rows - start;
        const want = Math.ceil(left / (4 * threads) / CHUNK_ROWS) * CHUNK_ROWS;
        const n = Math.min(left, Math.max(CHUNK_ROWS, Math.min(MAX_SLICE_ROWS, want)));
        this.queue.push({ matrix, start, rows: n, job });
        job.pending++;
        start += n;
      }
      this.dispatch();
    });
  }

  private dispatch(): void {
    for (;;) {
      const slice = this.queue[0];
      if (!slice) return;
      // the least busy thread, if it has room
      let best: ScoreThread | undefined;
      for (const t of this.threads) if (t.alive && (!best || t.inFlight < best.inFlight)) best = t;
      if (!best) {
        for (const s of this.queue.splice(0)) this.fail(s.job, new Error('no score worker is running'));
        return;
      }
      if (best.inFlight >= DEPTH) return;
      this.queue.shift();
      if (slice.job.failed) {
        slice.job.pending--;
        continue;
      }
      const cols = this.featureCount;
      const from = slice.start * cols;
      const size = slice.rows * cols;
      if (slice.matrix.buffer instanceof SharedArrayBuffer) {
        best.send(slice, slice.matrix.subarray(from, from + size), false);
      } else {
        const copy = this.buffer(size);
        copy.set(slice.matrix.subarray(from, from + size));
        best.send(slice, copy, true);
      }
    }
  }

  /** A Float32Array of `size` floats on a recycled (or new) transfer buffer. */
  private buffer(size: number): Float32Array {
    const bytes = size * 4;
    for (let i = this.spare.length - 1; i >= 0; i--) {
      const b = this.spare[i] as ArrayBuffer;
      if (b.byteLength >= bytes) {
        this.spare.splice(i, 1);
        return new Float32Array(b, 0, size);
      }
    }
    return new Float32Array(Math.max(size, MAX_SLICE_ROWS * this.featureCount));
  }

  private onReply(_thread: ScoreThread, slice: Slice, reply: Reply): void {
    const input = reply.input;
    // at most DEPTH per thread are ever in flight, so at most that many are kept between calls
    if (input && !(input.buffer instanceof SharedArrayBuffer) && this.spare.length < DEPTH * this.size)
      this.spare.push(input.buffer as ArrayBuffer);
    const job = slice.job;
    job.pending--;
    if (reply.pd) {
      if (!job.failed) job.out.set(reply.pd, slice.start);
    } else this.fail(job, new Error(reply.error ?? 'score worker failed'));
    if (job.pending === 0 && !job.failed) job.resolve(job.out);
    this.dispatch();
  }

  private onError(_thread: ScoreThread, lost: Slice[], e: Error): void {
    for (const s of lost) {
      s.job.pending--;
      this.fail(s.job, e);
    }
    this.dispatch();
  }

  private fail(job: Job, e: Error): void {
    if (job.failed) return;
    job.failed = true;
    job.reject(e);
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const s of this.queue.splice(0)) this.fail(s.job, new Error('the score pool was closed'));
    for (const t of this.threads) t.alive = false;
    await Promise.all(this.threads.map((t) => t.terminate()));
  }
}
