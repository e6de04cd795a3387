/**
 * A pool of scoring worker threads for full-book scoring: rows are split into contiguous slices, one per
 * worker, scored in parallel and stitched back in order.
 */
import { Worker } from 'node:worker_threads';

interface Pending {
  resolve: (pd: Float32Array) => void;
  reject: (e: Error) => void;
}

class ScoreThread {
  private nextId = 0;
  private readonly pending = new Map<number, Pending>();
  readonly ready: Promise<string>;

  constructor(private readonly worker: Worker) {
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
    worker.on('message', (msg: { id?: number; pd?: Float32Array; error?: string }) => {
      if (msg.id === undefined) return;
      const p = this.pending.get(msg.id);
      if (!p) return;
      this.pending.delete(msg.id);
      if (msg.pd) p.resolve(msg.pd);
      else p.reject(new Error(msg.error ?? 'score worker failed'));
    });
    worker.on('error', (e) => {
      for (const p of this.pending.values()) p.reject(e);
      this.pending.clear();
    });
  }

  score(matrix: Float32Array, rows: number): Promise<Float32Array> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ id, matrix, rows }, [matrix.buffer as ArrayBuffer]);
    });
  }

  terminate(): Promise<number> {
    return this.worker.terminate();
  }
}

export class ScorePool {
  private constructor(
    private readonly threads: ScoreThread[],
    readonly featureCount: number,
  ) {}

  static async start(modelDir: string, size: number, featureCount: number): Promise<ScorePool> {
    const bootstrap = new URL('./worker-bootstrap.mjs', import.meta.url);
    const entry = new URL('./score-worker.ts', import.meta.url).href;
    const threads = Array.from(
      { length: size },
      () => new ScoreThread(new Worker(bootstrap, { workerData: { entry, modelDir } })),
    );
    try {
      await Promise.all(threads.map((t) => t.ready));
    } catch (e) {
      await Promise.all(threads.map((t) => t.terminate()));
      throw e;
    }
    return new ScorePool(threads, featureCount);
  }

  get size(): number {
    return this.threads.length;
  }

  /** Score rows across the pool; `matrix` is copied per slice, the caller's array is left intact. */
  async score(matrix: Float32Array, rows: number): Promise<Float32Array> {
    const cols = this.featureCount;
    const per = Math.ceil(rows / this.threads.length);
    const parts = this.threads.map((t, i) => {
      const start = i * per;
      const n = Math.max(0, Math.min(per, rows - start));
      if (n === 0) return Promise.resolve(new Float32Array(0));
      return t.score(matrix.slice(start * cols, (start + n) * cols), n);
    });
    const out = new Float32Array(rows);
    let offset = 0;
    for (const part of await Promise.all(parts)) {
      out.set(part, offset);
      offset += part.length;
    }
    return out;
  }

  async close(): Promise<void> {
    await Promise.all(this.threads.map((t) => t.terminate()));
  }
}
