/**
 * A pool of scoring worker threads for full-book scoring. The rows are cut into slices (guided: large
 * first, smaller towards the end, each a whole number of scoring chunks) handed out as threads free up, so
 * a thread slowed down by other work on its core takes fewer slices instead of holding the others up.
 * Every thread has up to two slices queued so it never waits for a round trip.
 *
 * A matrix on a SharedArrayBuffer (as `snapshotParallel` produces) is read by the workers in place; any
 * other matrix is copied slice by slice into recycled transfer buffers, which come back with the results.
 * The caller's matrix is never modified.
 *
 * A worker that exits or crashes fails the slices it held (those calls reject; the others go on) and is
 * replaced with a new worker on the same model after RESTART_BASE_MS, doubling up to RESTART_MAX_MS while
 * that slot's workers keep dying, so a model that kills every worker does not spin. Until a replacement is
 * ready the other workers take the slices; with none ready, calls reject at once.
 *
 * The model: files read once by `readModelFiles` (what ModelScorer passes; every worker, replacements
 * included, builds its model from those bytes, whatever happens to the directory later) or a directory,
 * which each worker reads itself when it starts.
 */
import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import { logger } from '../log/logger.js';
import type { ModelFiles } from './model-files.js';
import { CHUNK_ROWS } from './predictor.js';
import { countScoreWorkerRestart } from './score-pool-stats.js';

export { scoreWorkerRestarts } from './score-pool-stats.js';

const BOOTSTRAP = new URL('./worker-bootstrap.mjs', import.meta.url);
const ENTRY = new URL('./score-worker.ts', import.meta.url).href;

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
/** ms before replacing a worker that died; doubled for each further death in a row of its slot */
export const RESTART_BASE_MS = 100;
/** ms: the longest wait between replacements of a slot whose workers keep dying */
export const RESTART_MAX_MS = 30_000;
/** ms: a worker ready for this long before it died is not counted as dying in a row */
const STABLE_MS = 60_000;

type ThreadState = 'starting' | 'ready' | 'dead';

class ScoreThread {
  private nextId = 0;
  private readonly pending = new Map<number, Slice>();
  readonly ready: Promise<string>;
  private resolveReady: (backend: string) => void = () => {};
  private rejectReady: (e: Error) => void = () => {};
  state: ThreadState = 'starting';
  /** epoch ms when it became ready */
  readyAt = 0;

  constructor(
    readonly slot: number,
    private readonly worker: Worker,
    private readonly onReply: (thread: ScoreThread, slice: Slice, reply: Reply) => void,
    private readonly onReady: (thread: ScoreThread) => void,
    private readonly onLost: (thread: ScoreThread, slices: Slice[], e: Error) => void,
  ) {
    this.ready = new Promise((resolve, reject) => {
      this.resolveReady = resolve;
      this.rejectReady = reject;
    });
    // a replacement's readiness is followed through onReady/onLost; nobody awaits it
    this.ready.catch(() => {});
    worker.on('message', (msg: Reply & { ready?: boolean; backend?: string }) => {
      if (msg.ready !== undefined) this.loaded(msg);
      else if (msg.id !== undefined) {
        const slice = this.pending.get(msg.id);
        if (!slice) return;
        this.pending.delete(msg.id);
        this.onReply(this, slice, msg);
      }
    });
    // an uncaught error in the worker: 'error', then 'exit'
    worker.on('error', (e) => this.lose(new Error(`score worker ${slot} crashed: ${e.message}`)));
    worker.on('exit', (code) => this.lose(new Error(`score worker ${slot} exited (code ${code})`)));
  }

  private loaded(msg: { ready?: boolean; backend?: string; error?: string }): void {
    if (this.state !== 'starting') return;
    if (msg.ready) {
      this.state = 'ready';
      this.readyAt = Date.now();
      this.resolveReady(msg.backend ?? 'unknown');
      this.onReady(this);
    } else {
      this.lose(new Error(`score worker ${this.slot} failed to load the model: ${msg.error}`));
      void this.worker.terminate();
    }
  }

  /** Dead from now on: what it holds fails with `e` (a later 'exit' changes nothing). */
  lose(e: Error): void {
    if (this.state === 'dead') return;
    this.state = 'dead';
    this.rejectReady(e);
    const lost = [...this.pending.values()];
    this.pending.clear();
    this.onLost(this, lost, e);
  }

  get inFlight(): number {
    return this.pending.size;
  }

  send(slice: Slice, matrix: Float32Array, transfer: boolean): void {
    const id = this.nextId++;
    this.pending.set(id, slice);
    this.worker.postMessage({ id, matrix, rows: slice.rows }, transfer ? [matrix.buffer as ArrayBuffer] : []);
  }

  /** Test hook: make the worker throw an uncaught error. */
  crashForTest(): void {
    this.worker.postMessage({ crashForTest: true });
  }

  terminate(): Promise<number> {
    return this.worker.terminate();
  }
}

export interface ScorePoolOptions {
  /** default: the process logger */
  log?: Logger;
  /** ms, default RESTART_BASE_MS */
  restartBaseMs?: number;
  /** ms, default RESTART_MAX_MS */
  restartMaxMs?: number;
}

export interface ScoreWorkerStatus {
  /** starting: loading the model (a replacement too); restarting: dead, its replacement due in restartInMs */
  state: 'starting' | 'ready' | 'restarting' | 'closed';
  /** deaths of this slot's workers in a row (reset by a scored slice, or a worker ready for 60 s) */
  deaths: number;
  /** ms: the wait before the scheduled replacement, while one is scheduled */
  restartInMs?: number;
  /** why the latest worker of this slot died */
  lastError?: string;
}

export interface ScorePoolStatus {
  size: number;
  /** threads taking slices */
  ready: number;
  /** replacement workers started by this pool */
  restarts: number;
  workers: ScoreWorkerStatus[];
}

interface SlotState {
  deaths: number;
  lastError?: string;
  timer?: NodeJS.Timeout;
  delayMs?: number;
}

export class ScorePool {
  /** slot -> its current worker thread */
  private readonly threads: ScoreThread[] = [];
  private readonly slots: SlotState[] = [];
  private readonly queue: Slice[] = [];
  /** transfer buffers back from the workers, for the next slices of unshared matrices */
  private readonly spare: ArrayBuffer[] = [];
  private closed = false;
  /**
   * set once every first worker is ready: a worker dying before it is ready fails `start` instead; one that
   * died after being ready, while another was loading, is replaced from then on
   */
  private running = false;
  private restarts = 0;

  private constructor(
    readonly featureCount: number,
    private readonly model: string | ModelFiles,
    private readonly log: Logger,
    /** ms */
    private readonly restartBaseMs: number,
    /** ms */
    private readonly restartMaxMs: number,
  ) {}

  static async start(
    model: string | ModelFiles,
    size: number,
    featureCount: number,
    opts: ScorePoolOptions = {},
  ): Promise<ScorePool> {
    const baseMs = opts.restartBaseMs ?? RESTART_BASE_MS;
    const maxMs = opts.restartMaxMs ?? RESTART_MAX_MS;
    if (!(baseMs > 0 && maxMs >= baseMs))
      throw new RangeError(
        `restart delays must be 0 < restartBaseMs <= restartMaxMs, got ${baseMs}, ${maxMs}`,
      );
    const log = (opts.log ?? logger).child({ component: 'score-pool' });
    const pool = new ScorePool(featureCount, model, log, baseMs, maxMs);
    for (let i = 0; i < size; i++) {
      pool.slots.push({ deaths: 0 });
      pool.threads.push(pool.spawn(i));
    }
    try {
      await Promise.all(pool.threads.map((t) => t.ready));
    } catch (e) {
      await pool.close();
      throw e;
    }
    pool.running = true;
    // a first worker that was ready and died while another was still loading: its ready promise had
    // resolved, so `start` did not fail, and no restart was scheduled before `running`
    for (const t of pool.threads)
      if (t.state === 'dead')
        pool.scheduleRestart(t.slot, new Error(`score worker ${t.slot} died while the pool was starting`), 0);
    return pool;
  }

  private spawn(slot: number): ScoreThread {
    const worker = new Worker(BOOTSTRAP, { workerData: { entry: ENTRY, model: this.model } });
    return new ScoreThread(
      slot,
      worker,
      (t, s, r) => this.onReply(t, s, r),
      (t) => this.onReady(t),
      (t, s, e) => this.onLost(t, s, e),
    );
  }

  get size(): number {
    return this.threads.length;
  }

  status(): ScorePoolStatus {
    return {
      size: this.size,
      ready: this.threads.filter((t) => t.state === 'ready').length,
      restarts: this.restarts,
      workers: this.threads.map((t, i) => {
        const slot = this.slots[i] as SlotState;
        const w: ScoreWorkerStatus = {
          state: this.closed ? 'closed' : t.state === 'dead' ? 'restarting' : t.state,
          deaths: slot.deaths,
        };
        if (slot.timer) w.restartInMs = slot.delayMs as number;
        if (slot.lastError) w.lastError = slot.lastError;
        return w;
      }),
    };
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
      // the least busy ready thread, if it has room
      let best: ScoreThread | undefined;
      for (const t of this.threads)
        if (t.state === 'ready' && (!best || t.inFlight < best.inFlight)) best = t;
      if (!best) {
        // no waiting for replacements (up to RESTART_MAX_MS away): the caller decides without scores
        const e = new Error(
          this.closed
            ? 'the score pool was closed'
            : `no score worker is running (${this.size - this.status().ready} of ${this.size} being replaced)`,
        );
        for (const s of this.queue.splice(0)) this.fail(s.job, e);
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

  private onReply(thread: ScoreThread, slice: Slice, reply: Reply): void {
    const input = reply.input;
    // at most DEPTH per thread are ever in flight, so at most that many are kept between calls
    if (input && !(input.buffer instanceof SharedArrayBuffer) && this.spare.length < DEPTH * this.size)
      this.spare.push(input.buffer as ArrayBuffer);
    const job = slice.job;
    job.pending--;
    if (reply.pd) {
      (this.slots[thread.slot] as SlotState).deaths = 0;
      if (!job.failed) job.out.set(reply.pd, slice.start);
    } else this.fail(job, new Error(reply.error ?? 'score worker failed'));
    if (job.pending === 0 && !job.failed) job.resolve(job.out);
    this.dispatch();
  }

  private onReady(thread: ScoreThread): void {
    if (!this.running) return;
    const slot = this.slots[thread.slot] as SlotState;
    this.log.info({ slot: thread.slot, deaths: slot.deaths }, 'replacement score worker ready');
    this.dispatch();
  }

  /** A worker died (or failed to load): fail its slices, and replace it unless the pool is closing. */
  private onLost(thread: ScoreThread, lost: Slice[], e: Error): void {
    for (const s of lost) {
      s.job.pending--;
      this.fail(s.job, e);
    }
    if (this.running && !this.closed && this.threads[thread.slot] === thread) {
      const slot = this.slots[thread.slot] as SlotState;
      if (thread.readyAt > 0 && Date.now() - thread.readyAt >= STABLE_MS) slot.deaths = 0;
      this.scheduleRestart(thread.slot, e, lost.length);
    }
    this.dispatch();
  }

  private scheduleRestart(slot: number, e: Error, lostSlices: number): void {
    const s = this.slots[slot] as SlotState;
    s.deaths++;
    s.lastError = e.message;
    s.delayMs = Math.min(this.restartMaxMs, this.restartBaseMs * 2 ** (s.deaths - 1));
    this.log.warn(
      { slot, err: e.message, lostSlices, deaths: s.deaths, restartInMs: s.delayMs },
      'score worker died; starting a new one',
    );
    s.timer = setTimeout(() => this.restart(slot), s.delayMs);
    // the workers keep the process alive, not a pending replacement
    s.timer.unref();
  }

  private restart(slot: number): void {
    const s = this.slots[slot] as SlotState;
    s.timer = undefined;
    s.delayMs = undefined;
    if (this.closed) return;
    this.restarts++;
    countScoreWorkerRestart();
    try {
      this.threads[slot] = this.spawn(slot);
    } catch (e) {
      this.scheduleRestart(
        slot,
        new Error(`score worker ${slot} could not start: ${(e as Error).message}`),
        0,
      );
    }
  }

  private fail(job: Job, e: Error): void {
    if (job.failed) return;
    job.failed = true;
    job.reject(e);
  }

  /** Test hook: end worker `slot` as a crash would ('exit', code 1). */
  async terminateWorkerForTest(slot: number): Promise<void> {
    await (this.threads[slot] as ScoreThread).terminate();
  }

  /** Test hook: make worker `slot` throw an uncaught error ('error', then 'exit'). */
  crashWorkerForTest(slot: number): void {
    (this.threads[slot] as ScoreThread).crashForTest();
  }

  /** Terminates every worker; queued and in-flight calls are rejected, nothing is restarted. */
  async close(): Promise<void> {
    this.closed = true;
    for (const s of this.slots) {
      clearTimeout(s.timer);
      s.timer = undefined;
      s.delayMs = undefined;
    }
    const e = new Error('the score pool was closed');
    for (const s of this.queue.splice(0)) this.fail(s.job, e);
    for (const t of this.threads) t.lose(e);
    await Promise.all(this.threads.map((t) => t.terminate()));
  }
}
