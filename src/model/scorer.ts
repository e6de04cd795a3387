/**
 * The scorer every consumer uses (service, score-history, backtest, bench): a model directory loaded
 * once, small batches scored in-process, large ones (full-book scoring) spread over a worker-thread pool.
 * The directory is read once (`readModelFiles`): the pool's workers, replacements included, build their
 * model from the same bytes, so a directory replaced later never reaches them.
 */
import { availableParallelism } from 'node:os';
import { modelVersion } from './artifacts.js';
import { type ModelFiles, readModelFiles } from './model-files.js';
import { Predictor } from './predictor.js';
import { ScorePool, type ScorePoolOptions } from './score-pool.js';
import type { FeatureContribution, PdScorer } from './types.js';

export interface ScorerOptions {
  /** worker threads for large batches; 0 = score everything in-process. Default: cores (max 4). */
  workers?: number;
  /** batches of at least this many rows go to the pool */
  poolMinRows?: number;
  /** the pool's logger and restart delays */
  pool?: ScorePoolOptions;
}

export class ModelScorer implements PdScorer {
  private constructor(
    private readonly predictor: Predictor,
    private readonly pool: ScorePool | undefined,
    private readonly poolMinRows: number,
    private readonly filesVerified: boolean,
  ) {}

  /** A model directory, or one already read by `readModelFiles`. */
  static async load(source: string | ModelFiles, opts: ScorerOptions = {}): Promise<ModelScorer> {
    const files = typeof source === 'string' ? await readModelFiles(source) : source;
    const predictor = await Predictor.load(files);
    const workers = opts.workers ?? Math.min(4, availableParallelism());
    const pool =
      workers > 0 ? await ScorePool.start(files, workers, predictor.featureCount, opts.pool) : undefined;
    return new ModelScorer(predictor, pool, opts.poolMinRows ?? 32_768, files.verified);
  }

  get info() {
    const meta = this.predictor.meta;
    return {
      version: modelVersion(meta),
      schemaHash: meta.featureSchema.hash,
      horizonMs: meta.horizonMs,
      backend: this.predictor.backend,
      featureNames: meta.featureSchema.names,
      filesVerified: this.filesVerified,
    };
  }

  get metadata() {
    return this.predictor.meta;
  }

  /**
   * How rows are scored: the forward pass (fused or Layers), what runs the layers (the WASM kernel or TF.js),
   * the normalisation, the pool's threads (0 = in-process only).
   */
  get scoring() {
    return {
      path: this.predictor.path,
      engine: this.predictor.engine,
      engineFallback: this.predictor.engineFallback,
      normalisation: this.predictor.normalisation,
      fallbackReason: this.predictor.fallbackReason,
      poolThreads: this.pool?.size ?? 0,
      poolMinRows: this.poolMinRows,
    };
  }

  async score(matrix: Float32Array, rows: number): Promise<Float32Array> {
    if (rows === 0) return new Float32Array(0);
    if (this.pool && rows >= this.poolMinRows) return this.pool.score(matrix, rows);
    return this.predictor.score(matrix, rows);
  }

  async probe(): Promise<void> {
    const row = new Float32Array(this.predictor.featureCount);
    this.predictor.score(row, 1);
    // large batches go to the pool, which fails on its own (no worker ready): probe it directly
    if (this.pool) await this.pool.score(row, 1);
  }

  /** In-process scoring only (no pool), e.g. for a baseline measurement. */
  scoreLocal(matrix: Float32Array, rows: number): Float32Array {
    return this.predictor.score(matrix, rows);
  }

  async explain(row: Float32Array, top = 5): Promise<FeatureContribution[]> {
    const names = this.predictor.meta.featureSchema.names;
    const neutral = this.predictor.meta.featureSchema.neutral;
    const cols = names.length;
    // row 0: as is; row 1 + j: feature j set to its neutral value
    const batch = new Float32Array((cols + 1) * cols);
    for (let r = 0; r <= cols; r++) batch.set(row.subarray(0, cols), r * cols);
    for (let j = 0; j < cols; j++) batch[(j + 1) * cols + j] = neutral[j] as number;
    const pd = this.predictor.score(batch, cols + 1);
    const base = pd[0] as number;
    const contributions = names.map((feature, j) => ({ feature, deltaPd: base - (pd[j + 1] as number) }));
    return contributions
      .filter((c) => c.deltaPd > 0)
      .sort((a, b) => b.deltaPd - a.deltaPd)
      .slice(0, top);
  }

  async close(): Promise<void> {
    await this.pool?.close();
    this.predictor.dispose();
  }
}

export function loadScorer(source: string | ModelFiles, opts?: ScorerOptions): Promise<ModelScorer> {
  return ModelScorer.load(source, opts);
}
