/**
 * Feature normalisation for the scoring fast path as one small WebAssembly SIMD kernel:
 * z = clip((x - mean) * invStd, -CLIP, CLIP) in float32, four lanes at a time, in place in the module's own
 * memory. TF.js's WASM backend needs three broadcasting ops (sub, mul, clipByValue) and three passes for the
 * same thing. The arithmetic is the same float32 arithmetic; the clip uses the same pmax/pmin lane ops as
 * XNNPACK's clamp (which TF.js's clipByValue runs), so a NaN becomes -CLIP on both paths.
 *
 * The module is assembled here from its bytes (no toolchain needed); `SimdNormaliser.create` returns
 * undefined where WebAssembly SIMD is not available, and the caller keeps the TF.js ops.
 */

/** unsigned LEB128 */
function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}

function section(id: number, body: number[]): number[] {
  return [id, ...uleb(body.length), ...body];
}

const I32 = 0x7f;
const F32 = 0x7d;
const V128 = 0x7b;
const LOCAL_GET = 0x20;
const LOCAL_SET = 0x21;
const LOCAL_TEE = 0x22;
const I32_CONST = 0x41;
const I32_ADD = 0x6a;
const I32_LT_U = 0x49;
const I32_GE_U = 0x4f;
const BLOCK = 0x02;
const LOOP = 0x03;
const VOID = 0x40;
const BR = 0x0c;
const BR_IF = 0x0d;
const END = 0x0b;
const simd = (op: number) => [0xfd, ...uleb(op)];
const V128_LOAD = [...simd(0x00), 0x00, 0x00]; // memarg: align 2^0 (unaligned allowed), offset 0
const V128_STORE = [...simd(0x0b), 0x00, 0x00];
const F32X4_SPLAT = simd(0x13);
const F32X4_SUB = simd(0xe5);
const F32X4_MUL = simd(0xe6);
const F32X4_PMIN = simd(0xea);
const F32X4_PMAX = simd(0xeb);

/**
 * normalise(x, end, params, patternBytes, clip): for each block of `patternBytes` bytes from x to end,
 * v = clip((v - mean[j]) * inv[j]) with mean at params and inv at params + patternBytes.
 */
function moduleBytes(importMemory: boolean): Uint8Array {
  // params: 0 x, 1 end, 2 params, 3 patternBytes, 4 clip (f32); locals: 5 j, 6 lo, 7 hi, 8 addr
  const X = 0;
  const EndP = 1;
  const P = 2;
  const L = 3;
  const C = 4;
  const J = 5;
  const LO = 6;
  const HI = 7;
  const ADDR = 8;
  const code = [
    // hi = splat(clip); lo = splat(-clip) via 0 - hi
    LOCAL_GET,
    C,
    ...F32X4_SPLAT,
    LOCAL_SET,
    HI,
    0x43, // f32.const 0
    0,
    0,
    0,
    0,
    ...F32X4_SPLAT,
    LOCAL_GET,
    HI,
    ...F32X4_SUB,
    LOCAL_SET,
    LO,
    BLOCK,
    VOID,
    LOOP,
    VOID,
    LOCAL_GET,
    X,
    LOCAL_GET,
    EndP,
    I32_GE_U,
    BR_IF,
    1,
    I32_CONST,
    0,
    LOCAL_SET,
    J,
    LOOP,
    VOID,
    // addr = x + j
    LOCAL_GET,
    X,
    LOCAL_GET,
    J,
    I32_ADD,
    LOCAL_TEE,
    ADDR,
    // pmin(hi, pmax(lo, (v - mean) * inv))
    LOCAL_GET,
    HI,
    LOCAL_GET,
    LO,
    LOCAL_GET,
    ADDR,
    ...V128_LOAD,
    LOCAL_GET,
    P,
    LOCAL_GET,
    J,
    I32_ADD,
    ...V128_LOAD,
    ...F32X4_SUB,
    LOCAL_GET,
    P,
    LOCAL_GET,
    L,
    I32_ADD,
    LOCAL_GET,
    J,
    I32_ADD,
    ...V128_LOAD,
    ...F32X4_MUL,
    ...F32X4_PMAX,
    ...F32X4_PMIN,
    ...V128_STORE,
    // j += 16; loop while j < patternBytes
    LOCAL_GET,
    J,
    I32_CONST,
    16,
    I32_ADD,
    LOCAL_TEE,
    J,
    LOCAL_GET,
    L,
    I32_LT_U,
    BR_IF,
    0,
    END,
    // x += patternBytes
    LOCAL_GET,
    X,
    LOCAL_GET,
    L,
    I32_ADD,
    LOCAL_SET,
    X,
    BR,
    0,
    END,
    END,
    END,
  ];
  const locals = [3, 1, I32, 2, V128, 1, I32];
  const body = [...locals, ...code];
  const bytes = (t: string) => [t.length, ...[...t].map((c) => c.charCodeAt(0))];
  return Uint8Array.from([
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
    ...section(1, [1, 0x60, 5, I32, I32, I32, I32, F32, 0]),
    // env.memory imported (min 0 pages), or a memory of its own (min 1 page), no maximum
    ...(importMemory ? section(2, [1, ...bytes('env'), ...bytes('memory'), 0x02, 0x00, 0x00]) : []),
    ...section(3, [1, 0]),
    ...(importMemory ? [] : section(5, [1, 0x00, 1])),
    ...(importMemory
      ? section(7, [1, ...bytes('normalise'), 0x00, 0])
      : section(7, [2, ...bytes('normalise'), 0x00, 0, ...bytes('memory'), 0x02, 0])),
    ...section(10, [1, ...uleb(body.length), ...body]),
  ]);
}

// The WebAssembly JS API, typed here: the project's libs (ES2023 + @types/node) do not declare it.
interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}
interface WasmInstance {
  readonly exports: Record<string, unknown>;
}
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => WasmInstance;
}
const wasmApi = (globalThis as unknown as { WebAssembly?: WasmApi }).WebAssembly;

const compiled = new Map<boolean, object | null>();
function compile(importMemory: boolean): object | null {
  let mod = compiled.get(importMemory);
  if (mod === undefined) {
    try {
      mod = wasmApi ? new wasmApi.Module(moduleBytes(importMemory)) : null;
    } catch {
      mod = null; // no WebAssembly SIMD here
    }
    compiled.set(importMemory, mod);
  }
  return mod;
}

/** mean and 1/std (float32), each repeated for 4 rows: the kernel's parameter block */
function paramBlock(mean: readonly number[], std: readonly number[]): Float32Array {
  const cols = mean.length;
  const params = new Float32Array(8 * cols);
  for (let r = 0; r < 4; r++)
    for (let c = 0; c < cols; c++) {
      params[r * cols + c] = mean[c] as number;
      params[4 * cols + r * cols + c] = 1 / (std[c] as number);
    }
  return params;
}

const PAGE = 65536;

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
    const mod = compile(false);
    if (!mod || !wasmApi || mean.length === 0 || mean.length !== std.length) return undefined;
    return new SimdNormaliser(new wasmApi.Instance(mod, {}), mean, std, clip);
  }

  private ensure(bytes: number): void {
    const need = this.dataOffset + bytes;
    const have = this.memory.buffer.byteLength;
    if (need > have) this.memory.grow(Math.ceil((need - have) / PAGE));
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
    const mod = compile(true);
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
