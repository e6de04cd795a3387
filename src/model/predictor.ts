/**
 * One process's (or worker thread's) scoring path: normalise -> MLP -> calibrate, over chunks of rows.
 * A plain chain of Dense layers (the default architecture) runs on the fused fast path (`FusedMlp`: the
 * scorer's own WASM SIMD kernel for relu/linear layers (wasm-mlp.ts), else one TF.js fused matmul per layer;
 * sigmoid and calibration in JS), with the same numbers as `predict`; any other model goes through
 * `LayersModel.predict` with an explicit `batchSize` (TF.js's default of 32 is hundreds of times slower).
 */
import type * as tfTypes from '@tensorflow/tfjs';
import { loadLayersModelFromFiles } from '../tf/fs-io.js';
import { initTf } from '../tf/runtime.js';
import { assertCompatible, type ModelMetadata } from './artifacts.js';
import { applyCalibrationInPlace, type Calibration } from './calibration.js';
import { ModelLoadError } from './errors.js';
import { type ForwardEngine, FusedMlp, type NormalisationMode } from './fused-mlp.js';
import { type ModelFiles, readModelFiles } from './model-files.js';
import { CLIP } from './normalisation.js';
import { applyStackCalibratedInPlace, applyStackInPlace, featureIndices } from './stack.js';

/**
 * What the fused path applies to a two-stage model's network: its own sigmoid, as TF.js computes it (a
 * sigmoid from the logits in JS clamps at 1e-6 where the stage's logit clamps at 1e-7, and differs by up to
 * 0.014 in pd on extreme rows of the shipped model).
 */
const NETWORK_ONLY: Calibration = { method: 'identity' };

/** rows per predict call: within the 4k-16k range where WASM runs at full speed */
export const CHUNK_ROWS = 8192;

export type ScoringPath = 'fused' | 'layers';

export class Predictor {
  private readonly mean: tfTypes.Tensor2D;
  private readonly invStd: tfTypes.Tensor2D;
  private readonly fused: FusedMlp | undefined;
  /** columns of the second stage's features (two-stage models only) */
  private readonly stackIdx: number[] | undefined;
  /** why the fused path is not used (undefined when it is) */
  readonly fallbackReason: string | undefined;

  private constructor(
    readonly meta: ModelMetadata,
    private readonly model: tfTypes.LayersModel,
    private readonly tf: typeof tfTypes,
    readonly backend: string,
    fast: boolean,
    normalise: NormalisationMode | 'auto',
    engine: ForwardEngine | 'auto',
  ) {
    const cols = meta.featureSchema.names.length;
    this.mean = tf.tensor2d(meta.normalisation.mean, [1, cols]);
    this.invStd = tf.tensor2d(
      meta.normalisation.std.map((s) => 1 / s),
      [1, cols],
    );
    // a two-stage model: the network's raw output goes through the second stage, then the calibration
    this.stackIdx = meta.stack ? featureIndices(meta.featureSchema.names, meta.stack.features) : undefined;
    const fused = fast
      ? FusedMlp.from(
          tf,
          model,
          meta.normalisation,
          meta.stack ? NETWORK_ONLY : meta.calibration,
          CHUNK_ROWS,
          normalise,
          engine,
        )
      : undefined;
    this.fused = fused instanceof FusedMlp ? fused : undefined;
    this.fallbackReason = fast ? (fused instanceof FusedMlp ? undefined : fused?.message) : 'disabled';
  }

  /**
   * Load a model directory, read whole by `readModelFiles`, or files already read that way (the pool's
   * workers get their parent's). `fast: false` forces the `LayersModel.predict` path (the reference the fused
   * path is tested against). `allowUnfinished`: only for the training run evaluating its own network, whose
   * metadata has no metrics yet (see `readCompatibleMetadata`).
   */
  static async load(
    source: string | ModelFiles,
    opts: {
      fast?: boolean;
      normalise?: NormalisationMode | 'auto';
      engine?: ForwardEngine | 'auto';
      allowUnfinished?: boolean;
    } = {},
  ): Promise<Predictor> {
    const files = typeof source === 'string' ? await readModelFiles(source) : source;
    const dir = files.dir;
    const meta = assertCompatible(dir, files.meta, { allowUnfinished: opts.allowUnfinished ?? false });
    const { tf, backend } = await initTf();
    let model: tfTypes.LayersModel;
    try {
      model = await loadLayersModelFromFiles(dir, files.network);
    } catch (e) {
      if (e instanceof ModelLoadError) throw e;
      throw new ModelLoadError(`${dir}: model.json and weights.bin do not load: ${(e as Error).message}`);
    }
    const cols = meta.featureSchema.names.length;
    const inputCols = model.inputs[0]?.shape[1];
    if (model.inputs.length !== 1 || inputCols !== cols) {
      model.dispose();
      throw new ModelLoadError(
        `${dir}: the network takes ${inputCols ?? '?'} inputs, metadata.json has ${cols} features`,
      );
    }
    return new Predictor(
      meta,
      model,
      tf,
      backend,
      opts.fast ?? true,
      opts.normalise ?? 'auto',
      opts.engine ?? 'auto',
    );
  }

  /** which forward pass `score` uses */
  get path(): ScoringPath {
    return this.fused ? 'fused' : 'layers';
  }

  /** which code runs the layers on the fused path ('tfjs' on the layers path too) */
  get engine(): ForwardEngine {
    return this.fused?.engine ?? 'tfjs';
  }

  /** why the fused path does not use the WASM kernel (undefined when it does) */
  get engineFallback(): string | undefined {
    return this.fused ? this.fused.kernelFallback : 'layers path';
  }

  /** how `score` normalises: one WASM SIMD pass (in TF.js's heap or not), or TF.js ops */
  get normalisation(): NormalisationMode {
    return this.fused?.normalisation ?? 'tfjs';
  }

  get featureCount(): number {
    return this.meta.featureSchema.names.length;
  }

  /** Uncalibrated network outputs for already-normalised rows. */
  predictNormalised(z: Float32Array, rows: number): Float32Array {
    const cols = this.featureCount;
    const out = new Float32Array(rows);
    for (let start = 0; start < rows; start += CHUNK_ROWS) {
      const n = Math.min(CHUNK_ROWS, rows - start);
      const y = this.tf.tidy(() => {
        const x = this.tf.tensor2d(z.subarray(start * cols, (start + n) * cols), [n, cols]);
        return this.model.predict(x, { batchSize: n }) as tfTypes.Tensor;
      });
      out.set(y.dataSync() as Float32Array, start);
      y.dispose();
    }
    return out;
  }

  /**
   * Calibrated pd for raw feature rows (row-major, `featureCount` columns). Normalisation (the same
   * formula as `normalise`, clip included) runs inside TF.js, vectorised, chunk by chunk.
   */
  score(matrix: Float32Array, rows: number, out: Float32Array = new Float32Array(rows)): Float32Array {
    const cols = this.featureCount;
    if (matrix.length < rows * cols)
      throw new RangeError(`matrix holds ${matrix.length} values, ${rows} rows need ${rows * cols}`);
    if (out.length < rows) throw new RangeError(`out holds ${out.length} values, ${rows} rows need ${rows}`);
    if (this.fused) {
      this.fused.score(matrix, rows, out);
      return this.meta.stack ? this.finishTwoStage(matrix, rows, out) : out;
    }
    const tf = this.tf;
    for (let start = 0; start < rows; start += CHUNK_ROWS) {
      const n = Math.min(CHUNK_ROWS, rows - start);
      const y = tf.tidy(() => {
        const x = tf.tensor2d(matrix.subarray(start * cols, (start + n) * cols), [n, cols]);
        const z = tf.clipByValue(tf.mul(tf.sub(x, this.mean), this.invStd), -CLIP, CLIP);
        return this.model.predict(z, { batchSize: n }) as tfTypes.Tensor;
      });
      out.set(y.dataSync() as Float32Array, start);
      y.dispose();
    }
    if (this.meta.stack) return this.finishTwoStage(matrix, rows, out);
    applyCalibrationInPlace(this.meta.calibration, out.subarray(0, rows));
    return out;
  }

  /** second stage (network output + the raw stacked features of the same rows), then calibration */
  private finishTwoStage(matrix: Float32Array, rows: number, out: Float32Array): Float32Array {
    const stack = this.meta.stack;
    const idx = this.stackIdx;
    if (!stack || !idx) return out;
    const view = out.subarray(0, rows);
    const cal = this.meta.calibration;
    if (cal.method === 'platt' || cal.method === 'identity') {
      applyStackCalibratedInPlace(
        stack,
        cal.method === 'platt' ? cal : null,
        view,
        matrix,
        this.featureCount,
        idx,
      );
      return out;
    }
    applyStackInPlace(stack, view, matrix, this.featureCount, idx);
    applyCalibrationInPlace(cal, view);
    return out;
  }

  dispose(): void {
    this.fused?.dispose();
    this.model.dispose();
    this.mean.dispose();
    this.invStd.dispose();
  }
}
