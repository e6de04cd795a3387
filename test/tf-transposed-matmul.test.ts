import type * as tfTypes from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { Rng } from '../src/sim/random.js';
import { initTf } from '../src/tf/runtime.js';
import { installTransposedMatMul, restoreStockMatMul } from '../src/tf/wasm-transposed-matmul.js';

let tf: typeof tfTypes;
beforeAll(async () => {
  ({ tf } = await initTf('wasm'));
});

/** Deterministic values in [-1, 1), drawn without TF.js (so the reference never touches the kernels under test). */
function values(n: number, seed: number): Float32Array {
  const rng = new Rng(seed, 'matmul-test');
  return Float32Array.from({ length: n }, () => 2 * rng.next() - 1);
}

/** float64 reference of op(a) · op(b) for row-major batches of matrices. */
function reference(
  a: Float32Array,
  aShape: number[],
  b: Float32Array,
  bShape: number[],
  transposeA: boolean,
  transposeB: boolean,
): Float64Array {
  const batch = aShape.length === 3 ? (aShape[0] as number) : 1;
  const [ar, ac] = aShape.slice(-2) as [number, number];
  const [br, bc] = bShape.slice(-2) as [number, number];
  const m = transposeA ? ac : ar;
  const k = transposeA ? ar : ac;
  const n = transposeB ? br : bc;
  const out = new Float64Array(batch * m * n);
  for (let t = 0; t < batch; t++) {
    const ao = t * ar * ac;
    const bo = t * br * bc;
    for (let i = 0; i < m; i++)
      for (let j = 0; j < n; j++) {
        let sum = 0;
        for (let p = 0; p < k; p++) {
          const av = transposeA ? (a[ao + p * ac + i] as number) : (a[ao + i * ac + p] as number);
          const bv = transposeB ? (b[bo + j * bc + p] as number) : (b[bo + p * bc + j] as number);
          sum += av * bv;
        }
        out[t * m * n + i * n + j] = sum;
      }
  }
  return out;
}

function maxAbsDiff(x: ArrayLike<number>, y: ArrayLike<number>): number {
  expect(x.length).toBe(y.length);
  let worst = 0;
  for (let i = 0; i < x.length; i++) worst = Math.max(worst, Math.abs((x[i] as number) - (y[i] as number)));
  return worst;
}

describe('WASM matmul with transposed operands', () => {
  it('is installed once on the wasm backend: installing again wraps nothing', () => {
    expect(tf.getBackend()).toBe('wasm');
    expect(installTransposedMatMul(tf)).toEqual([]);
  });

  it('can put TF.js own kernels back and wrap them again, computing the same product either way', () => {
    const a = values(200 * 40, 21);
    const b = values(200 * 30, 22);
    const product = () =>
      tf.tidy(() => tf.matMul(tf.tensor2d(a, [200, 40]), tf.tensor2d(b, [200, 30]), true, false).dataSync());
    const wrappedFunc = tf.getKernel('BatchMatMul', 'wasm')?.kernelFunc;
    const wrapped = product();
    expect(restoreStockMatMul(tf).sort()).toEqual(['BatchMatMul', '_FusedMatMul']);
    try {
      expect(tf.getKernel('BatchMatMul', 'wasm')?.kernelFunc).not.toBe(wrappedFunc);
      expect(restoreStockMatMul(tf)).toEqual([]);
      const scalar = product();
      expect(maxAbsDiff(wrapped, scalar)).toBeLessThan(1e-4);
    } finally {
      expect(installTransposedMatMul(tf).sort()).toEqual(['BatchMatMul', '_FusedMatMul']);
    }
    expect(maxAbsDiff(product(), wrapped)).toBe(0);
  });

  const cases: [string, number[], number[], boolean, boolean][] = [
    ['a^T b (the weight gradient of a Dense layer)', [300, 50], [300, 64], true, false],
    ['a b^T (the input gradient of a Dense layer)', [300, 64], [50, 64], false, true],
    ['a^T b^T', [40, 30], [20, 40], true, true],
    ['batched a^T b', [3, 17, 9], [3, 17, 11], true, false],
    ['matrix-vector a^T b (left to the scalar kernel)', [200, 32], [200, 1], true, false],
    ['untransposed a b', [64, 50], [50, 32], false, false],
  ];
  for (const [name, aShape, bShape, ta, tb] of cases) {
    it(`matches a float64 reference: ${name}`, () => {
      const aN = aShape.reduce((p, q) => p * q, 1);
      const bN = bShape.reduce((p, q) => p * q, 1);
      const a = values(aN, 1 + aN);
      const b = values(bN, 2 + bN);
      const got = tf.tidy(() =>
        tf.matMul(tf.tensor(a, aShape), tf.tensor(b, bShape), ta, tb).dataSync(),
      ) as Float32Array;
      const want = reference(a, aShape, b, bShape, ta, tb);
      // float32 sums of up to 300 products of values in [-1, 1): well inside 1e-3
      expect(maxAbsDiff(got, want)).toBeLessThan(1e-3);
      // and not trivially: the product has spread
      expect(Math.max(...want) - Math.min(...want)).toBeGreaterThan(1);
    });
  }

  it('keeps the fused kernel bias and activation when an operand is transposed', () => {
    const a = values(120 * 20, 5);
    const b = values(16 * 20, 6);
    const bias = values(16, 7);
    const got = tf.tidy(() =>
      tf.fused
        .matMul({
          a: tf.tensor2d(a, [120, 20]),
          b: tf.tensor2d(b, [16, 20]),
          transposeB: true,
          bias: tf.tensor1d(bias),
          activation: 'relu',
        })
        .dataSync(),
    ) as Float32Array;
    const ref = reference(a, [120, 20], b, [16, 20], false, true);
    const want = ref.map((v, i) => Math.max(0, v + (bias[i % 16] as number)));
    expect(maxAbsDiff(got, want)).toBeLessThan(1e-3);
    expect(want.filter((v) => v === 0).length).toBeGreaterThan(0);
    expect(want.filter((v) => v > 0).length).toBeGreaterThan(0);
  });

  it('leaves no backend buffers behind (the transposed copies are freed)', () => {
    const backend = tf.backend() as unknown as { numDataIds(): number };
    const a = tf.tensor(values(256 * 48, 9), [256, 48]);
    const b = tf.tensor(values(256 * 24, 10), [256, 24]);
    const before = backend.numDataIds();
    for (let i = 0; i < 20; i++) {
      // tidy keeps what it returns: dispose the sum too
      tf.tidy(() => tf.matMul(a, b, true, false).add(tf.matMul(b, a, true, false).transpose())).dispose();
    }
    expect(backend.numDataIds()).toBe(before);
    a.dispose();
    b.dispose();
  });

  it('gives the same gradient as the untransposed formulation', () => {
    // d/dW sum((xW)^2) = 2 x^T (xW): the tape asks the kernel for a transposed product
    const x = tf.tensor2d(values(64 * 12, 11), [64, 12]);
    const w = tf.tensor2d(values(12 * 5, 12), [12, 5]);
    const grad = tf.tidy(() =>
      tf
        .grad((wv: tfTypes.Tensor) => tf.sum(tf.square(tf.matMul(x, wv))))(w)
        .dataSync(),
    );
    const xw = reference(
      x.dataSync() as Float32Array,
      [64, 12],
      w.dataSync() as Float32Array,
      [12, 5],
      false,
      false,
    );
    const want = reference(
      x.dataSync() as Float32Array,
      [64, 12],
      Float32Array.from(xw, (v) => 2 * v),
      [64, 5],
      true,
      false,
    );
    expect(maxAbsDiff(grad as Float32Array, want)).toBeLessThan(1e-3);
    x.dispose();
    w.dispose();
  });
});
