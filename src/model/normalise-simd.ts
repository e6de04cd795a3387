/**
 * Feature normalisation for the scoring fast path as one small WebAssembly SIMD kernel:
 * z = clip((x - mean) * invStd, -CLIP, CLIP) in float32, four lanes at a time, in place in the module's own
 * memory. TF.js's WASM backend needs three broadcasting ops (sub, mul, clipByValue) and three passes for the
 * same thing. The arithmetic is the same float32 arithmetic; the clip uses the same pmax/pmin lane ops as
 * XNNPACK's clamp (which TF.js's clipByValue runs), so a NaN becomes -CLIP on both paths.
 *
 * The module is assembled here from its bytes (wasm-asm.ts, no toolchain needed); `SimdNormaliser.create`
 * returns undefined where WebAssembly SIMD is not available, and the caller keeps the TF.js ops.
 */
import {
  compileModule,
  F32,
  I32,
  moduleBytes,
  op,
  V128,
  WASM_PAGE,
  type WasmFunction,
  type WasmInstance,
  type WasmMemory,
  wasmApi,
} from './wasm-asm.js';

/**
 * normalise(x, end, params, patternBytes, clip): for each block of `patternBytes` bytes from x to end,
 * v = pmin(clip, pmax(-clip, (v - mean[j]) * inv[j])) with mean at params and inv at params + patternBytes.
 */
export function normaliseFunction(): WasmFunction {
  // params: 0 x, 1 end, 2 params, 3 patternBytes, 4 clip (f32); locals: 5 j, 6 lo, 7 hi, 8 addr
  const [X, END, P, L, C, J, LO, HI, ADDR] = [0, 1, 2, 3, 4, 5, 6, 7, 8];
  return {
    name: 'normalise',
    params: [I32, I32, I32, I32, F32],
    locals: [
      [1, I32],
      [2, V128],
      [1, I32],
    ],
    code: [
      // hi = splat(clip); lo = 0 - hi
      ...op.get(C),
      ...op.f32x4Splat(),
      ...op.set(HI),
      ...op.f32zero(),
      ...op.f32x4Splat(),
      ...op.get(HI),
      ...op.f32x4Sub(),
      ...op.set(LO),
      ...op.block(),
      ...op.loop(),
      ...op.get(X),
      ...op.get(END),
      ...op.i32GeU(),
      ...op.brIf(1),
      ...op.i32(0),
      ...op.set(J),
      ...op.loop(),
      // addr = x + j; store pmin(hi, pmax(lo, (v - mean) * inv))
      ...op.get(X),
      ...op.get(J),
      ...op.i32Add(),
      ...op.tee(ADDR),
      ...op.get(HI),
      ...op.get(LO),
      ...op.get(ADDR),
      ...op.v128Load(),
      ...op.get(P),
      ...op.get(J),
      ...op.i32Add(),
      ...op.v128Load(),
      ...op.f32x4Sub(),
      ...op.get(P),
      ...op.get(L),
      ...op.i32Add(),
      ...op.get(J),
      ...op.i32Add(),
      ...op.v128Load(),
      ...op.f32x4Mul(),
      ...op.f32x4Pmax(),
      ...op.f32x4Pmin(),
      ...op.v128Store(),
      // j += 16 while j < patternBytes
      ...op.get(J),
      ...op.i32(16),
      ...op.i32Add(),
      ...op.tee(J),
      ...op.get(L),
      ...op.i32LtU(),
      ...op.brIf(0),
      ...op.end(),
      // x += patternBytes
      ...op.get(X),
      ...op.get(L),
      ...op.i32Add(),
      ...op.set(X),
      ...op.br(0),
      ...op.end(),
      ...op.end(),
    ],
  };
}

const compiled = new Map<'import' | 'own', object | null>();
function compile(memory: 'import' | 'own'): object | null {
  let mod = compiled.get(memory);
  if (mod === undefined) {
    mod = compileModule(moduleBytes([normaliseFunction()], memory));
    compiled.set(memory, mod);
  }
  return mod;
}

/** mean and 1/std (float32), each repeated for 4 rows: the kernel's parameter block */
export function paramBlock(mean: readonly number[], std: readonly number[]): Float32Array {
  const cols = mean.length;
  const params = new Float32Array(8 * cols);
  for (let r = 0; r < 4; r++)
    for (let c = 0; c < cols; c++) {
      params[r * cols + c] = mean[c] as number;
      params[4 * cols + r * cols + c] = 1 / (std[c] as number);
    }
  return params;
}

export class SimdNormaliser {
  private readonly memory: WasmMemory;
  private readonly run: (x: number, end: number, params: number, patternBytes: number, clip: number) => void;
  /** bytes of one pattern: 4 rows (a multiple of 16 bytes whatever the column count) */
  private readonly patternBytes: number;
  private readonly dataOffset: number;
  private view: Float32Array;

  private constructor(
    instance: WasmInstance,
    mean: readonly number[],
    std: readonly number[],
    private readonly clip: number,
  ) {
    const cols = mean.length;
    this.memory = instance.exports.memory as WasmMemory;
    this.run = instance.exports.normalise as SimdNormaliser['run'];
    this.patternBytes = 4 * cols * 4;
    this.dataOffset = 2 * this.patternBytes;
    this.ensure(0);
    new Float32Array(this.memory.buffer).set(paramBlock(mean, std));
    this.view = new Float32Array(this.memory.buffer);
  }

  /** A normaliser for these columns, or undefined where WebAssembly SIMD is unavailable. */
  static create(mean: readonly number[], std: readonly number[], clip: number): SimdNormaliser | undefined {
    const mod = compile('own');
    if (!mod || !wasmApi || mean.length === 0 || mean.length !== std.length) return undefined;
    return new SimdNormaliser(new wasmApi.Instance(mod, {}), mean, std, clip);
  }

  private ensure(bytes: number): void {
    const need = this.dataOffset + bytes;
    const have = this.memory.buffer.byteLength;
    if (need > have) this.memory.grow(Math.ceil((need - have) / WASM_PAGE));
  }

  /**
   * Normalise `n` rows of `src` (row-major, `cols` columns); returns a view of the module's memory holding
   * the result, valid until the next call.
   */
  normalise(src: Float32Array, n: number, cols: number): Float32Array {
    const size = n * cols;
    // whole 4-row patterns; the padding rows are computed and ignored
    const padded = Math.ceil(n / 4) * 4 * cols;
    this.ensure(padded * 4);
    if (this.view.buffer !== this.memory.buffer) this.view = new Float32Array(this.memory.buffer);
    const at = this.dataOffset / 4;
    this.view.set(src.subarray(0, size), at);
    this.run(this.dataOffset, this.dataOffset + padded * 4, 0, this.patternBytes, this.clip);
    return this.view.subarray(at, at + size);
  }
}

/** What the in-place normaliser needs of TF.js's WASM backend (internals, checked at creation). */
interface WasmBackendInternals {
  wasm?: { asm?: { memory?: unknown } };
  dataIdMap?: { get(dataId: object): { memoryOffset?: unknown } | undefined };
}

/** The parts of TF.js the in-place normaliser uses. */
export interface TensorFactory<T extends { dataId: object; dispose(): void }> {
  backend(): unknown;
  tensor2d(values: Float32Array, shape: [number, number]): T;
  tensor1d(values: Float32Array): T;
}

/**
 * The same kernel run in place on a tensor in TF.js's WASM heap (the module imports the backend's memory):
 * the rows are copied into the heap once, by `tensor2d`, and normalised there, which saves the copy out of
 * the normaliser's own memory. It relies on the WASM backend's internals (its `asm.memory` and the tensors'
 * `memoryOffset`); `create` returns undefined when they are not there, and the caller uses `SimdNormaliser`.
 */
export class HeapNormaliser<T extends { dataId: object; dispose(): void }> {
  private constructor(
    private readonly tf: TensorFactory<T>,
    private readonly backend: WasmBackendInternals,
    private readonly memory: WasmMemory,
    private readonly run: SimdNormaliser['run'],
    private readonly params: T,
    private readonly paramsOffset: number,
    private readonly mean: Float32Array,
    private readonly inv: Float32Array,
    private readonly cols: number,
    private readonly clip: number,
  ) {}

  static create<T extends { dataId: object; dispose(): void }>(
    tf: TensorFactory<T>,
    mean: readonly number[],
    std: readonly number[],
    clip: number,
  ): HeapNormaliser<T> | undefined {
    const mod = compile('import');
    const backend = tf.backend() as WasmBackendInternals;
    const memory = backend.wasm?.asm?.memory as WasmMemory | undefined;
    if (!mod || !wasmApi || !memory || !(memory.buffer instanceof ArrayBuffer)) return undefined;
    if (typeof backend.dataIdMap?.get !== 'function') return undefined;
    const cols = mean.length;
    if (cols === 0 || cols !== std.length) return undefined;
    const params = tf.tensor1d(paramBlock(mean, std));
    const offset = backend.dataIdMap.get(params.dataId)?.memoryOffset;
    if (typeof offset !== 'number') {
      params.dispose();
      return undefined;
    }
    const instance = new wasmApi.Instance(mod, { env: { memory } });
    return new HeapNormaliser(
      tf,
      backend,
      memory,
      instance.exports.normalise as SimdNormaliser['run'],
      params,
      offset,
      Float32Array.from(mean),
      Float32Array.from(std, (s) => 1 / s),
      cols,
      clip,
    );
  }

  /** `n` normalised rows of `src` as a new [n, cols] tensor. */
  tensor(src: Float32Array, n: number): T {
    const cols = this.cols;
    const t = this.tf.tensor2d(src.subarray(0, n * cols), [n, cols]);
    const offset = this.backend.dataIdMap?.get(t.dataId)?.memoryOffset;
    if (typeof offset !== 'number') {
      t.dispose();
      throw new Error('TF.js WASM tensor without a memoryOffset');
    }
    // whole 4-row patterns in the kernel (never past the tensor's end), the last 0-3 rows here
    const full = n - (n % 4);
    const patternBytes = 16 * cols;
    this.run(offset, offset + full * cols * 4, this.paramsOffset, patternBytes, this.clip);
    if (full < n) {
      const heap = new Float32Array(this.memory.buffer);
      const lo = -this.clip;
      const hi = this.clip;
      for (let i = offset / 4 + full * cols, end = offset / 4 + n * cols, c = 0; i < end; i++) {
        // the kernel's float32 arithmetic: (x - mean) * inv, then pmax(lo, v), pmin(hi, v)
        const v = Math.fround(
          Math.fround((heap[i] as number) - (this.mean[c] as number)) * (this.inv[c] as number),
        );
        // biome-ignore lint/complexity/useMathMinMax: pmax semantics (NaN -> lo), which Math.max does not have
        const a = lo < v ? v : lo;
        // biome-ignore lint/complexity/useMathMinMax: pmin semantics, as the kernel
        heap[i] = a < hi ? a : hi;
        c = c + 1 === cols ? 0 : c + 1;
      }
    }
    return t;
  }

  dispose(): void {
    this.params.dispose();
  }
}
