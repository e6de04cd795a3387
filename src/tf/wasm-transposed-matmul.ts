/**
 * Training speed on the WASM backend: its matmul kernels (`BatchMatMul`, `_FusedMatMul`) run XNNPACK only for
 * `a · b`; with `transposeA` or `transposeB` set they fall back to a scalar loop that is 5-12x slower
 * (measured for 1,024-row batches of the default MLP: `x^T · dy` 2.9 ms against 0.46 ms for
 * `transpose(x) · dy`). Backpropagation through a Dense layer asks for exactly those two products (dW = x^T ·
 * dy, dx = dy · W^T), so they took most of a training step. This wraps both kernels: a transposed operand is
 * first transposed explicitly by the backend's own `Transpose` kernel (a copy), then the untransposed XNNPACK
 * path runs. Same result up to float summation order; the forward pass (no transposes) is untouched, so
 * scoring and `predict` do not change at all.
 */
import type * as tfTypes from '@tensorflow/tfjs';

type KernelConfig = tfTypes.KernelConfig;
type KernelFunc = tfTypes.KernelFunc;
type TensorInfo = tfTypes.TensorInfo;

/** On a wrapped config: the backend's own config it wraps (so installing twice is a no-op, and restoring needs no
 * other state). */
const ORIGINAL = Symbol('preempt.transposedMatMul.original');
type MaybeWrapped = KernelConfig & { [ORIGINAL]?: KernelConfig };

function swapLastTwo(rank: number): number[] {
  const perm = Array.from({ length: rank }, (_, i) => i);
  perm[rank - 2] = rank - 1;
  perm[rank - 1] = rank - 2;
  return perm;
}

function wrapKernel(original: KernelFunc, transposeKernel: KernelFunc): KernelFunc {
  return (args) => {
    const attrs = args.attrs as { transposeA?: boolean; transposeB?: boolean } | undefined;
    if (!attrs?.transposeA && !attrs?.transposeB) return original(args);
    // A matrix-vector product (an output dimension of 1) gains nothing from XNNPACK and the copy costs more
    // than the scalar loop saves (measured: x^T · dy of a 32 -> 1 layer, 54 us scalar, 132 us wrapped).
    const { a, b } = args.inputs as { a: TensorInfo; b: TensorInfo };
    const rows = attrs.transposeA ? a.shape[a.shape.length - 1] : a.shape[a.shape.length - 2];
    const cols = attrs.transposeB ? b.shape[b.shape.length - 2] : b.shape[b.shape.length - 1];
    if (rows === 1 || cols === 1) return original(args);
    const backend = args.backend as { disposeData(dataId: object): void };
    const inputs = { ...args.inputs } as Record<string, TensorInfo>;
    const made: TensorInfo[] = [];
    for (const [name, flag] of [
      ['a', attrs.transposeA],
      ['b', attrs.transposeB],
    ] as const) {
      const t = inputs[name];
      if (!flag || t === undefined) continue;
      const out = transposeKernel({
        inputs: { x: t },
        backend: args.backend,
        attrs: { perm: swapLastTwo(t.shape.length) },
      }) as TensorInfo;
      inputs[name] = out;
      made.push(out);
    }
    try {
      return original({ ...args, inputs, attrs: { ...attrs, transposeA: false, transposeB: false } });
    } finally {
      for (const t of made) backend.disposeData(t.dataId);
    }
  };
}

const MATMUL_KERNELS = ['BatchMatMul', '_FusedMatMul'] as const;

/**
 * Replace the WASM backend's `BatchMatMul` and `_FusedMatMul` kernels with the wrapped ones. Call after
 * `@tensorflow/tfjs-backend-wasm` is imported (it registers its kernels on import); idempotent. Returns the
 * kernels it wrapped.
 */
export function installTransposedMatMul(tf: typeof tfTypes): string[] {
  const transpose = tf.getKernel('Transpose', 'wasm');
  if (!transpose) return [];
  const wrapped: string[] = [];
  for (const name of MATMUL_KERNELS) {
    const config = tf.getKernel(name, 'wasm') as MaybeWrapped | undefined;
    if (!config || config[ORIGINAL]) continue;
    tf.unregisterKernel(name, 'wasm');
    const next: MaybeWrapped = {
      ...config,
      kernelFunc: wrapKernel(config.kernelFunc, transpose.kernelFunc),
      [ORIGINAL]: config,
    };
    tf.registerKernel(next);
    wrapped.push(name);
  }
  return wrapped;
}

/** Put TF.js's own matmul kernels back (the bench's baseline); `installTransposedMatMul` wraps them again. */
export function restoreStockMatMul(tf: typeof tfTypes): string[] {
  const restored: string[] = [];
  for (const name of MATMUL_KERNELS) {
    const original = (tf.getKernel(name, 'wasm') as MaybeWrapped | undefined)?.[ORIGINAL];
    if (!original) continue;
    tf.unregisterKernel(name, 'wasm');
    tf.registerKernel(original);
    restored.push(name);
  }
  return restored;
}
