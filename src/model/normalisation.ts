/**
 * Feature normalisation learned from the training split and stored with the model: z = (x - mean) / std,
 * clipped to +-CLIP so that one extreme row cannot saturate the network. Constant features get std 1.
 */
import { z } from 'zod';

export const CLIP = 8;

export const NormalisationSchema = z.object({
  mean: z.array(z.number()),
  std: z.array(z.number()),
});
export type Normalisation = z.infer<typeof NormalisationSchema>;

/** Mean and standard deviation of each column of a row-major matrix (Welford, float64 accumulators). */
export function fitNormalisation(matrix: Float32Array, rows: number, cols: number): Normalisation {
  const mean = new Float64Array(cols);
  const m2 = new Float64Array(cols);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    const n = r + 1;
    for (let c = 0; c < cols; c++) {
      const x = matrix[base + c] as number;
      const d = x - (mean[c] as number);
      mean[c] = (mean[c] as number) + d / n;
      m2[c] = (m2[c] as number) + d * (x - (mean[c] as number));
    }
  }
  const std = Array.from(m2, (v) => {
    const s = rows > 1 ? Math.sqrt(v / (rows - 1)) : 0;
    return s > 1e-9 ? s : 1;
  });
  return { mean: Array.from(mean), std };
}

/** Normalise into `out` (may be `matrix` itself). */
export function normalise(
  norm: Normalisation,
  matrix: Float32Array,
  rows: number,
  out: Float32Array = new Float32Array(matrix.length),
): Float32Array {
  const cols = norm.mean.length;
  const mean = Float32Array.from(norm.mean);
  const inv = Float32Array.from(norm.std, (s) => 1 / s);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    for (let c = 0; c < cols; c++) {
      const z = ((matrix[base + c] as number) - (mean[c] as number)) * (inv[c] as number);
      out[base + c] = Math.min(CLIP, Math.max(-CLIP, z));
    }
  }
  return out;
}
