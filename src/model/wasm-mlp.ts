/**
 * The whole forward pass of a chain of relu/linear Dense layers (last layer relu, linear or sigmoid) in one
 * small WebAssembly SIMD module of its own: normalise in place, then one `dense` call per layer over a
 * chunk of rows, with no TF.js tensors, copies or kernel dispatch in between.
 *
 * `dense` computes what XNNPACK's fully-connected operator (TF.js's fused matmul on the WASM backend)
 * computes, in the same float32 order: per output, the bias, then + x[k] * w[k] (a multiply, then an add)
 * for k = 0, 1, ... in turn, then relu as pmax(0, acc). So its results are bit-identical to the TF.js path,
 * and `FusedMlp` checks that on a probe batch before using it. A 4-row x 8-column tile is kept in eight
 * v128 accumulators; the weights are packed per block of 8 outputs as [bias x 8][K x 8] (outputs padded to a
 * multiple of 8 with zero columns that are never read).
 *
 * A last sigmoid layer is computed as Dense.call does it: the matmul without bias, then the bias added in
 * float32 (here, in JS) -- the logits; the sigmoid itself is left to the caller.
 */
import type { DenseSpec } from './fused-mlp.js';
import { normaliseFunction, paramBlock } from './normalise-simd.js';
import {
  compileModule,
  I32,
  moduleBytes,
  op,
  V128,
  WASM_PAGE,
  type WasmFunction,
  type WasmMemory,
  wasmApi,
} from './wasm-asm.js';

/**
 * dense(x, K, strideX, w, blocks, out, strideOut, rows, relu): for every 4-row tile (rows a multiple of 4)
 * and every block of 8 outputs, acc = bias, then acc = acc + x[r][k] * w[k] for k < K, then relu or not.
 */
function denseFunction(): WasmFunction {
  // params
  const [X, K, SX, W, BLOCKS, OUT, SO, ROWS, RELU] = [0, 1, 2, 3, 4, 5, 6, 7, 8];
  // i32 locals
  const [R, XR, BLK, WP, XP, KEND, OP, SX2, SX3, SO2, SO3] = [9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19];
  // v128 locals: acc (row r, half h) = ACC + 2r + h
  const ACC = 20;
  const [W0, W1, S, ZERO] = [28, 29, 30, 31];
  const acc = (r: number, h: number) => ACC + 2 * r + h;
  const rowX = [XP, SX, SX2, SX3]; // x address of row r = XP (+ stride * r)
  const rowO = [OP, SO, SO2, SO3];
  const code: number[] = [
    ...op.get(SX),
    ...op.get(SX),
    ...op.i32Add(),
    ...op.set(SX2),
    ...op.get(SX2),
    ...op.get(SX),
    ...op.i32Add(),
    ...op.set(SX3),
    ...op.get(SO),
    ...op.get(SO),
    ...op.i32Add(),
    ...op.set(SO2),
    ...op.get(SO2),
    ...op.get(SO),
    ...op.i32Add(),
    ...op.set(SO3),
    ...op.i32(0),
    ...op.set(R),
    // rows, 4 at a time
    ...op.block(),
    ...op.loop(),
    ...op.get(R),
    ...op.get(ROWS),
    ...op.i32GeU(),
    ...op.brIf(1),
    ...op.get(X),
    ...op.get(R),
    ...op.get(SX),
    ...op.i32Mul(),
    ...op.i32Add(),
    ...op.set(XR),
    ...op.get(OUT),
    ...op.get(R),
    ...op.get(SO),
    ...op.i32Mul(),
    ...op.i32Add(),
    ...op.set(OP),
    ...op.get(W),
    ...op.set(WP),
    ...op.i32(0),
    ...op.set(BLK),
    // blocks of 8 outputs
    ...op.block(),
    ...op.loop(),
    ...op.get(BLK),
    ...op.get(BLOCKS),
    ...op.i32GeU(),
    ...op.brIf(1),
  ];
  for (let r = 0; r < 4; r++)
    for (let h = 0; h < 2; h++) code.push(...op.get(WP), ...op.v128Load(16 * h), ...op.set(acc(r, h)));
  code.push(
    ...op.get(WP),
    ...op.i32(32),
    ...op.i32Add(),
    ...op.set(WP),
    ...op.get(XR),
    ...op.tee(XP),
    ...op.get(K),
    ...op.i32(4),
    ...op.i32Mul(),
    ...op.i32Add(),
    ...op.set(KEND),
    // k = 0 .. K-1 in order
    ...op.loop(),
    ...op.get(WP),
    ...op.v128Load(0),
    ...op.set(W0),
    ...op.get(WP),
    ...op.v128Load(16),
    ...op.set(W1),
  );
  for (let r = 0; r < 4; r++) {
    code.push(...op.get(XP));
    if (r > 0) code.push(...op.get(rowX[r] as number), ...op.i32Add());
    code.push(...op.v128Load32Splat(), ...op.set(S));
    for (let h = 0; h < 2; h++)
      code.push(
        ...op.get(acc(r, h)),
        ...op.get(S),
        ...op.get(h === 0 ? W0 : W1),
        ...op.f32x4Mul(),
        ...op.f32x4Add(),
        ...op.set(acc(r, h)),
      );
  }
  code.push(
    ...op.get(WP),
    ...op.i32(32),
    ...op.i32Add(),
    ...op.set(WP),
    ...op.get(XP),
    ...op.i32(4),
    ...op.i32Add(),
    ...op.tee(XP),
    ...op.get(KEND),
    ...op.i32LtU(),
    ...op.brIf(0),
    ...op.end(),
  );
  // store the tile, relu = pmax(0, acc) when asked
  for (let r = 0; r < 4; r++)
    for (let h = 0; h < 2; h++) {
      code.push(...op.get(OP));
      if (r > 0) code.push(...op.get(rowO[r] as number), ...op.i32Add());
      code.push(
        ...op.get(ZERO),
        ...op.get(acc(r, h)),
        ...op.f32x4Pmax(),
        ...op.get(acc(r, h)),
        ...op.get(RELU),
        ...op.select(),
        ...op.v128Store(16 * h),
      );
    }
  code.push(
    ...op.get(OP),
    ...op.i32(32),
    ...op.i32Add(),
    ...op.set(OP),
    ...op.get(BLK),
    ...op.i32(1),
    ...op.i32Add(),
    ...op.set(BLK),
    ...op.br(0),
    ...op.end(),
    ...op.end(),
    ...op.get(R),
    ...op.i32(4),
    ...op.i32Add(),
    ...op.set(R),
    ...op.br(0),
    ...op.end(),
    ...op.end(),
  );
  return {
    name: 'dense',
    params: [I32, I32, I32, I32, I32, I32, I32, I32, I32],
    locals: [
      [11, I32],
      [12, V128],
    ],
    code,
  };
}

let compiled: object | null | undefined;
function compile(): object | null {
  if (compiled === undefined)
    compiled = compileModule(moduleBytes([normaliseFunction(), denseFunction()], 'own'));
  return compiled;
}

interface Layer {
  /** K inputs, N outputs, padded to whole blocks of 8 */
  k: number;
  n: number;
  blocks: number;
  weights: number; // byte offset of the packed weights
  out: number; // byte offset of the layer's output buffer
  relu: boolean;
}

const align = (bytes: number) => Math.ceil(bytes / 64) * 64;

export class WasmMlp {
  private readonly memory: WasmMemory;
  private readonly normalise: (x: number, end: number, params: number, pattern: number, clip: number) => void;
  private readonly dense: (...args: number[]) => void;
  private readonly layers: Layer[];
  private readonly input: number;
  private heap: Float32Array;
  /** bias of a last sigmoid layer, added in float32 after the matmul as Dense.call does (0 if none) */
  private readonly lastBias: number;

  private constructor(
    instance: { exports: Record<string, unknown> },
    specs: DenseSpec[],
    mean: readonly number[],
    std: readonly number[],
    private readonly clip: number,
    readonly cols: number,
    readonly chunkRows: number,
    /** the last layer is a sigmoid whose logits `forward` returns */
    readonly logits: boolean,
  ) {
    this.memory = instance.exports.memory as WasmMemory;
    this.normalise = instance.exports.normalise as WasmMlp['normalise'];
    this.dense = instance.exports.dense as WasmMlp['dense'];
    const rows4 = Math.ceil(chunkRows / 4) * 4;
    // layout: normaliser parameters, packed weights, input rows, one output buffer per layer
    const params = paramBlock(mean, std);
    let at = align(params.byteLength);
    const packed: { offset: number; data: Float32Array }[] = [];
    let inputs = cols;
    this.layers = specs.map((s, i) => {
      const k = inputs;
      const blocks = Math.ceil(s.units / 8);
      const data = new Float32Array(blocks * (8 + 8 * k));
      const last = i === specs.length - 1;
      const biasInKernel = !(last && logits);
      for (let b = 0; b < blocks; b++) {
        const base = b * (8 + 8 * k);
        for (let l = 0; l < 8 && b * 8 + l < s.units; l++) {
          const j = b * 8 + l;
          if (biasInKernel && s.bias) data[base + l] = s.bias[j] as number;
          for (let kk = 0; kk < k; kk++) data[base + 8 + kk * 8 + l] = s.kernel[kk * s.units + j] as number;
        }
      }
      const layer = { k, n: blocks * 8, blocks, weights: at, out: 0, relu: s.activation === 'relu' };
      packed.push({ offset: at, data });
      at = align(at + data.byteLength);
      inputs = s.units;
      return layer;
    });
    const last = specs[specs.length - 1] as DenseSpec;
    this.lastBias = logits && last.bias ? (last.bias[0] as number) : 0;
    this.input = at;
    at = align(at + rows4 * cols * 4);
    for (const l of this.layers) {
      l.out = at;
      at = align(at + rows4 * l.n * 4);
    }
    const have = this.memory.buffer.byteLength;
    if (at > have) this.memory.grow(Math.ceil((at - have) / WASM_PAGE));
    this.heap = new Float32Array(this.memory.buffer);
    this.heap.set(params, 0);
    for (const p of packed) this.heap.set(p.data, p.offset / 4);
  }

  /**
   * The kernel for these layers, or undefined where WebAssembly SIMD is missing or the chain has what the
   * kernel does not do (a sigmoid before the last layer, more than one output).
   */
  static create(
    specs: DenseSpec[],
    mean: readonly number[],
    std: readonly number[],
    clip: number,
    chunkRows: number,
  ): WasmMlp | undefined {
    const last = specs[specs.length - 1];
    if (last?.units !== 1) return undefined;
    if (specs.slice(0, -1).some((s) => s.activation === 'sigmoid')) return undefined;
    const mod = compile();
    if (!mod || !wasmApi || mean.length === 0 || mean.length !== std.length) return undefined;
    return new WasmMlp(
      new wasmApi.Instance(mod, {}),
      specs,
      mean,
      std,
      clip,
      mean.length,
      chunkRows,
      last.activation === 'sigmoid',
    );
  }

  /**
   * Network outputs for `n` (at most `chunkRows`) raw rows of `src` into `out[offset..]`: the logits when
   * the last layer is a sigmoid (`logits`), else the last layer's outputs.
   */
  forward(src: Float32Array, n: number, out: Float32Array, offset: number): void {
    const cols = this.cols;
    if (n > this.chunkRows) throw new RangeError(`${n} rows, the kernel takes ${this.chunkRows} at a time`);
    if (this.heap.buffer !== this.memory.buffer) this.heap = new Float32Array(this.memory.buffer);
    const rows4 = Math.ceil(n / 4) * 4;
    this.heap.set(src.subarray(0, n * cols), this.input / 4);
    this.normalise(this.input, this.input + rows4 * cols * 4, 0, 16 * cols, this.clip);
    let x = this.input;
    let stride = cols * 4;
    for (const l of this.layers) {
      this.dense(x, l.k, stride, l.weights, l.blocks, l.out, l.n * 4, rows4, l.relu ? 1 : 0);
      x = l.out;
      stride = l.n * 4;
    }
    const heap = this.heap;
    const base = x / 4;
    if (this.logits && this.lastBias !== 0) {
      const b = this.lastBias;
      for (let r = 0; r < n; r++) out[offset + r] = Math.fround((heap[base + r * 8] as number) + b);
    } else for (let r = 0; r < n; r++) out[offset + r] = heap[base + r * 8] as number;
  }
}
