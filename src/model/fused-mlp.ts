/**
 * The scoring fast path for a chain of Dense layers: the LayersModel's kernels and biases are read once and
 * the forward pass runs outside the Layers API (no `predict` batching, slicing or concatenation): on the
 * scorer's own WASM SIMD kernel (`WasmMlp`, relu/linear hidden layers; bit-identical to TF.js, checked on a
 * probe batch at load), else as one `tf.fused.matMul` (matmul + bias + activation) per layer. Normalisation stays the same
 * float32 formula as `normalise` (subtract the mean, multiply by 1/std, clip to +-CLIP), in one WebAssembly
 * SIMD pass, in place in TF.js's WASM heap (`HeapNormaliser`), else in its own memory (`SimdNormaliser`),
 * else as TF.js ops. A final sigmoid with Platt calibration is computed in JS
 * from the logits (one exp per row); with isotonic or no calibration the sigmoid stays TF.js's (as `predict`
 * applies it after the last matmul), so the calibration sees bit-identical scores.
 *
 * `FusedMlp.from` returns undefined for a model it cannot run (any layer other than Dense/Dropout/Input,
 * an activation other than relu/linear/sigmoid, a non-chain topology); the caller then uses `predict`.
 */
import type * as tfTypes from '@tensorflow/tfjs';
import { applyCalibration, type Calibration } from './calibration.js';
import { CLIP, type Normalisation } from './normalisation.js';
import { HeapNormaliser, SimdNormaliser } from './normalise-simd.js';
import { WasmMlp } from './wasm-mlp.js';

/** which code runs the layers: the scorer's own WASM SIMD kernel, or TF.js fused matmuls */
export type ForwardEngine = 'wasm-kernel' | 'tfjs';
/** rows per call of the WASM kernel (its buffers stay in the L2 cache) */
export const KERNEL_CHUNK_ROWS = 2048;

/** how rows are normalised; `auto` picks the first of wasm-simd-in-place, wasm-simd, tfjs that works */
export type NormalisationMode = 'wasm-simd-in-place' | 'wasm-simd' | 'tfjs';

export type DenseActivation = 'relu' | 'linear' | 'sigmoid';
const SUPPORTED: readonly string[] = ['relu', 'linear', 'sigmoid'];
/** layers that are the identity at inference */
const IDENTITY_LAYERS: readonly string[] = ['Dropout', 'InputLayer'];

export interface DenseSpec {
  units: number;
  activation: DenseActivation;
  kernel: Float32Array; // [inputs, units] row-major, as Dense stores it
  bias: Float32Array | undefined;
}

export class UnsupportedModelError extends Error {
  readonly code = 'MODEL_NOT_FUSABLE';
}

/**
 * The Dense layers of `model` in order, or an UnsupportedModelError saying why the model is not a plain
 * chain of Dense layers with relu/linear/sigmoid activations.
 */
export function denseChain(model: tfTypes.LayersModel): DenseSpec[] | UnsupportedModelError {
  if (model.inputs.length !== 1 || model.outputs.length !== 1)
    return new UnsupportedModelError(
      `${model.inputs.length} inputs / ${model.outputs.length} outputs (one of each needed)`,
    );
  const specs: DenseSpec[] = [];
  let previous: string | undefined;
  for (const layer of model.layers) {
    const kind = layer.getClassName();
    // a chain: every layer (after the first) reads the one before it
    const inbound = layer.inboundNodes.flatMap((n) => n.inboundLayers.map((l) => l.name));
    if (previous !== undefined && (inbound.length !== 1 || inbound[0] !== previous))
      return new UnsupportedModelError(`layer ${layer.name} does not read only ${previous}`);
    previous = layer.name;
    if (IDENTITY_LAYERS.includes(kind)) continue;
    if (kind !== 'Dense') return new UnsupportedModelError(`layer ${layer.name} is a ${kind}`);
    const config = layer.getConfig() as { units?: number; activation?: string; useBias?: boolean };
    const activation = config.activation ?? 'linear';
    if (!SUPPORTED.includes(activation))
      return new UnsupportedModelError(`layer ${layer.name} has activation ${activation}`);
    const weights = layer.getWeights();
    const kernel = weights[0];
    if (kernel?.rank !== 2) return new UnsupportedModelError(`layer ${layer.name} has no rank-2 kernel`);
    const units = kernel.shape[1] as number;
    const bias = config.useBias === false ? undefined : weights[1];
    specs.push({
      units,
      activation: activation as DenseActivation,
      kernel: Float32Array.from(kernel.dataSync()),
      bias: bias ? Float32Array.from(bias.dataSync()) : undefined,
    });
  }
  if (specs.length === 0) return new UnsupportedModelError('no Dense layer');
  return specs;
}

/**
 * One Dense layer as `Dense.call` computes it: relu and linear fuse matmul, bias and activation into one
 * kernel; a sigmoid layer is a matmul, then a separate bias add, then the sigmoid (Layers does not fuse
 * sigmoid), which rounds differently from a fused bias, so it is run the same way here.
 */
interface DenseTensors {
  kernel: tfTypes.Tensor2D;
  bias: tfTypes.Tensor1D | undefined;
  /** relu/linear: one fused matmul with bias and activation */
  fused: 'relu' | 'linear' | undefined;
  /** sigmoid layers: apply tf.sigmoid after the bias add (false for a last sigmoid left to `finish`) */
  sigmoidOp: boolean;
}

export class FusedMlp {
  private readonly layers: DenseTensors[];
  private readonly mean: tfTypes.Tensor2D;
  private readonly invStd: tfTypes.Tensor2D;
  private readonly heap: HeapNormaliser<tfTypes.Tensor> | undefined;
  private readonly simd: SimdNormaliser | undefined;
  /** the last layer's sigmoid, applied in JS on the logits together with Platt calibration */
  private readonly sigmoidInJs: boolean;
  readonly outputs: number;
  private readonly finish: Finish;
  private readonly kernel: WasmMlp | undefined;
  /** why the WASM kernel is not used (undefined when it is) */
  readonly kernelFallback: string | undefined;
  private readonly logits: Float32Array;
  private readonly meanValues: readonly number[];
  private readonly stdValues: readonly number[];

  private constructor(
    private readonly tf: typeof tfTypes,
    specs: DenseSpec[],
    norm: Normalisation,
    cal: Calibration,
    readonly cols: number,
    readonly chunkRows: number,
    normalise: NormalisationMode | 'auto',
    engine: ForwardEngine | 'auto',
  ) {
    const last = specs[specs.length - 1] as DenseSpec;
    this.meanValues = norm.mean;
    this.stdValues = norm.std;
    this.outputs = last.units;
    this.sigmoidInJs = last.activation === 'sigmoid' && last.units === 1 && cal.method === 'platt';
    this.finish = finisher(cal, this.sigmoidInJs);
    let inputs = cols;
    this.layers = specs.map((s, i) => {
      if (s.kernel.length !== inputs * s.units)
        throw new UnsupportedModelError(`Dense layer ${i} kernel does not fit ${inputs} inputs`);
      inputs = s.units;
      const isLast = i === specs.length - 1;
      return {
        kernel: tf.tensor2d(s.kernel, [s.kernel.length / s.units, s.units]),
        bias: s.bias ? tf.tensor1d(s.bias) : undefined,
        fused: s.activation === 'sigmoid' ? undefined : s.activation,
        sigmoidOp: s.activation === 'sigmoid' && !(isLast && this.sigmoidInJs),
      };
    });
    this.mean = tf.tensor2d(norm.mean, [1, cols]);
    this.invStd = tf.tensor2d(
      norm.std.map((s) => 1 / s),
      [1, cols],
    );
    const auto = normalise === 'auto';
    this.heap =
      auto || normalise === 'wasm-simd-in-place'
        ? HeapNormaliser.create<tfTypes.Tensor>(tf, norm.mean, norm.std, CLIP)
        : undefined;
    this.simd =
      !this.heap && (auto || normalise === 'wasm-simd')
        ? SimdNormaliser.create(norm.mean, norm.std, CLIP)
        : undefined;
    let kernel =
      engine === 'tfjs' ? undefined : WasmMlp.create(specs, norm.mean, norm.std, CLIP, KERNEL_CHUNK_ROWS);
    this.logits = new Float32Array(kernel?.chunkRows ?? 0);
    let why =
      engine === 'tfjs' ? 'not asked for' : kernel ? undefined : 'WASM SIMD or the layers unsupported';
    if (kernel) {
      this.kernel = kernel;
      why = this.probe();
      if (why) kernel = undefined;
    }
    this.kernel = kernel;
    this.kernelFallback = why;
  }

  /** which code runs the layers */
  get engine(): ForwardEngine {
    return this.kernel ? 'wasm-kernel' : 'tfjs';
  }

  /**
   * Run a probe batch through the kernel and through TF.js: their network outputs must be bit-identical
   * (the kernel copies XNNPACK's order of operations; a TF.js release that changed it would show here).
   * Returns the difference found, if any.
   */
  private probe(): string | undefined {
    const rows = 64 + 3;
    const x = new Float32Array(rows * this.cols);
    // deterministic values across and far beyond the clip range, in units of the normalisation
    let seed = 12345;
    for (let i = 0; i < x.length; i++) {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      const u = seed / 2 ** 32;
      const c = i % this.cols;
      const spread = i % 7 === 0 ? 40 : 3;
      x[i] = (this.meanValues[c] as number) + (u * 2 - 1) * spread * (this.stdValues[c] as number);
    }
    const viaKernel = this.kernelValues(x, rows);
    const viaTf = this.forwardChunk(x, rows);
    for (let i = 0; i < rows; i++)
      if (!Object.is(viaKernel[i], viaTf[i]))
        return `the WASM kernel gave ${viaKernel[i]} where TF.js gave ${viaTf[i]} (probe row ${i})`;
    return undefined;
  }

  /** The kernel's network outputs (as `forwardChunk` returns them) for `n` raw rows. */
  private kernelValues(x: Float32Array, n: number): Float32Array {
    const kernel = this.kernel as WasmMlp;
    const tf = this.tf;
    const values = n <= this.logits.length ? this.logits : new Float32Array(n);
    for (let start = 0; start < n; start += kernel.chunkRows) {
      const m = Math.min(kernel.chunkRows, n - start);
      kernel.forward(x.subarray(start * this.cols), m, values, start);
    }
    if (!kernel.logits || this.sigmoidInJs) return values;
    // the sigmoid TF.js applies (XNNPACK's), for scores bit-identical to predict
    const t = tf.tensor1d(values.subarray(0, n));
    const p = tf.sigmoid(t);
    t.dispose();
    const out = p.dataSync() as Float32Array;
    p.dispose();
    return out;
  }

  /**
   * how normalisation runs: one WASM SIMD pass in TF.js's heap or in its own memory (always so with the
   * WASM kernel, which normalises in its memory), or TF.js ops
   */
  get normalisation(): NormalisationMode {
    if (this.kernel) return 'wasm-simd';
    return this.heap ? 'wasm-simd-in-place' : this.simd ? 'wasm-simd' : 'tfjs';
  }

  /** The fast path for `model`, or the reason it cannot be used. */
  static from(
    tf: typeof tfTypes,
    model: tfTypes.LayersModel,
    norm: Normalisation,
    cal: Calibration,
    chunkRows: number,
    normalise: NormalisationMode | 'auto' = 'auto',
    engine: ForwardEngine | 'auto' = 'auto',
  ): FusedMlp | UnsupportedModelError {
    const specs = denseChain(model);
    if (specs instanceof UnsupportedModelError) return specs;
    const cols = norm.mean.length;
    if ((specs[0] as DenseSpec).kernel.length !== cols * (specs[0] as DenseSpec).units)
      return new UnsupportedModelError(`the first Dense layer does not take ${cols} features`);
    try {
      return new FusedMlp(tf, specs, norm, cal, cols, chunkRows, normalise, engine);
    } catch (e) {
      if (e instanceof UnsupportedModelError) return e;
      throw e;
    }
  }

  /** Normalised rows as a tensor (one SIMD pass and one copy, or three TF.js ops). */
  private normalised(x: Float32Array, n: number): tfTypes.Tensor2D {
    const tf = this.tf;
    if (this.heap) return this.heap.tensor(x, n) as tfTypes.Tensor2D;
    if (this.simd) return tf.tensor2d(this.simd.normalise(x, n, this.cols), [n, this.cols]);
    const input = tf.tensor2d(x, [n, this.cols]);
    const centred = tf.sub(input, this.mean);
    input.dispose();
    const scaled = tf.mul(centred, this.invStd);
    centred.dispose();
    const z = tf.clipByValue(scaled, -CLIP, CLIP);
    scaled.dispose();
    return z as tfTypes.Tensor2D;
  }

  /** The network's outputs for `n` raw rows (logits when the sigmoid is left to `finish`). */
  private forwardChunk(x: Float32Array, n: number): Float32Array {
    const tf = this.tf;
    let h: tfTypes.Tensor = this.normalised(x, n);
    const step = (next: tfTypes.Tensor) => {
      h.dispose();
      h = next;
    };
    for (const layer of this.layers) {
      if (layer.fused) {
        step(
          tf.fused.matMul({
            a: h as tfTypes.Tensor2D,
            b: layer.kernel,
            bias: layer.bias,
            activation: layer.fused,
          }),
        );
        continue;
      }
      step(tf.fused.matMul({ a: h as tfTypes.Tensor2D, b: layer.kernel }));
      if (layer.bias) step(tf.add(h, layer.bias));
      if (layer.sigmoidOp) step(tf.sigmoid(h));
    }
    const values = h.dataSync() as Float32Array;
    h.dispose();
    return values;
  }

  /**
   * Calibrated pd for raw rows (row-major, `cols` columns) into `out`: the same numbers as normalise ->
   * `model.predict` -> calibration, chunk by chunk.
   */
  score(matrix: Float32Array, rows: number, out: Float32Array): Float32Array {
    if (this.outputs !== 1) throw new RangeError(`the model has ${this.outputs} outputs, scoring needs 1`);
    const cols = this.cols;
    const chunk = this.kernel ? this.kernel.chunkRows : this.chunkRows;
    for (let start = 0; start < rows; start += chunk) {
      const n = Math.min(chunk, rows - start);
      const x = matrix.subarray(start * cols, (start + n) * cols);
      const y = this.kernel ? this.kernelValues(x, n) : this.forwardChunk(x, n);
      this.finish(y, n, out, start);
    }
    return out;
  }

  dispose(): void {
    for (const l of this.layers) {
      l.kernel.dispose();
      l.bias?.dispose();
    }
    this.mean.dispose();
    this.invStd.dispose();
    this.heap?.dispose();
  }
}

/** logit(1 - 1e-6): calibration's logit clamps its input to [1e-6, 1 - 1e-6] */
const LOGIT_CLAMP = Math.log((1 - 1e-6) / 1e-6);

type Finish = (y: Float32Array, n: number, out: Float32Array, offset: number) => void;

/**
 * out[offset + i] = calibrate(y[i]), or with `sigmoidInJs` (Platt only) calibrate(sigmoid(y[i])) from the
 * logits y in one exp per row: sigmoid(a * logit(clamp(sigmoid(y))) + b) = sigmoid(a * clamp(y, +-logit(1 -
 * 1e-6)) + b), the logit of the sigmoid taken exactly rather than through the float32-rounded probability.
 * Isotonic calibration gives exactly `applyCalibration`'s numbers, with a grid lookup for the knot search.
 */
export function finisher(cal: Calibration, sigmoidInJs: boolean): Finish {
  if (sigmoidInJs) {
    if (cal.method !== 'platt')
      throw new RangeError('the sigmoid is computed in JS only with Platt calibration');
    const { a, b } = cal;
    return (y, n, out, offset) => {
      for (let i = 0; i < n; i++) {
        const z = Math.min(LOGIT_CLAMP, Math.max(-LOGIT_CLAMP, y[i] as number));
        out[offset + i] = 1 / (1 + Math.exp(-(a * z + b)));
      }
    };
  }
  switch (cal.method) {
    case 'identity':
      return (y, n, out, offset) => out.set(y.subarray(0, n), offset);
    case 'platt':
      return (y, n, out, offset) => {
        for (let i = 0; i < n; i++) out[offset + i] = applyCalibration(cal, y[i] as number);
      };
    case 'isotonic':
      return isotonicFinisher(cal);
  }
}

/** cells of the isotonic lookup grid */
const GRID = 1024;

/**
 * `applyCalibration` for isotonic knots, the same arithmetic; the segment (the last knot at or below the
 * score) is found from a uniform grid over the knots' range and a short scan instead of a binary search.
 */
function isotonicFinisher(cal: Calibration & { method: 'isotonic' }): Finish {
  const last = cal.x.length - 1;
  if (last < 1)
    return (y, n, out, offset) => {
      for (let i = 0; i < n; i++) out[offset + i] = applyCalibration(cal, y[i] as number);
    };
  const xs = Float64Array.from(cal.x);
  const ys = Float64Array.from(cal.y);
  const x0 = xs[0] as number;
  const xl = xs[last] as number;
  const y0 = ys[0] as number;
  const yl = ys[last] as number;
  const scale = xl > x0 ? GRID / (xl - x0) : 0;
  // grid[c]: the last knot at or below the start of cell c (a starting point; the scan corrects it)
  const grid = new Int32Array(GRID + 1);
  for (let c = 0, k = 0; c <= GRID; c++) {
    const at = x0 + c / scale;
    while (k < last && (xs[k + 1] as number) <= at) k++;
    grid[c] = k;
  }
  return (y, n, out, offset) => {
    for (let i = 0; i < n; i++) {
      const p = y[i] as number;
      if (p <= x0) out[offset + i] = y0;
      else if (p >= xl) out[offset + i] = yl;
      else if (Number.isNaN(p)) out[offset + i] = applyCalibration(cal, p);
      else {
        // the last knot lo < last with xs[lo] <= p (so xs[lo + 1] > p), as the binary search finds it
        let lo = grid[Math.min(GRID, Math.floor((p - x0) * scale))] as number;
        while (lo > 0 && (xs[lo] as number) > p) lo--;
        while (lo < last - 1 && (xs[lo + 1] as number) <= p) lo++;
        const hi = lo + 1;
        const xa = xs[lo] as number;
        const xb = xs[hi] as number;
        const t = xb > xa ? (p - xa) / (xb - xa) : 0;
        out[offset + i] = (ys[lo] as number) + t * ((ys[hi] as number) - (ys[lo] as number));
      }
    }
  };
}
