/**
 * The scoring fast path (fused Dense layers, one-pass SIMD normalisation, sigmoid + calibration in JS) gives
 * the numbers of the old path: normalise (clip included) -> LayersModel.predict -> calibration, in process
 * and through the worker pool, for plain and shared matrices, over several chunks and a ragged last one.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type * as tfTypes from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FEATURE_COUNT, featureSchemaInfo } from '../../src/features/schema.js';
import { type ModelMetadata, saveModelDir } from '../../src/model/artifacts.js';
import {
  applyCalibration,
  applyCalibrationInPlace,
  type Calibration,
  compressIsotonic,
  fitIsotonic,
} from '../../src/model/calibration.js';
import { type Architecture, createModel } from '../../src/model/create-model.js';
import { denseChain, finisher, UnsupportedModelError } from '../../src/model/fused-mlp.js';
import { CLIP, type Normalisation, normalise } from '../../src/model/normalisation.js';
import { SimdNormaliser } from '../../src/model/normalise-simd.js';
import { CHUNK_ROWS, Predictor } from '../../src/model/predictor.js';
import { loadScorer } from '../../src/model/scorer.js';
import { Rng } from '../../src/sim/random.js';
import { initTf } from '../../src/tf/runtime.js';
import { testModelMetadata } from '../helpers/model-metadata.js';

const root = mkdtempSync(join(tmpdir(), 'preempt-fast-path-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

let tf: typeof tfTypes;
beforeAll(async () => {
  tf = (await initTf()).tf;
});

const info = featureSchemaInfo();
const COLS = FEATURE_COUNT;
/** two full chunks and a ragged third */
const ROWS = 2 * CHUNK_ROWS + 1234;

function randomNormalisation(rng: Rng): Normalisation {
  return {
    mean: Array.from({ length: COLS }, () => rng.normal() * 3),
    std: Array.from({ length: COLS }, () => 0.05 + Math.abs(rng.normal()) * 4),
  };
}

/** Rows around the mean, one in ten values far outside the clip range (both sides), a few non-finite. */
function randomRows(rng: Rng, norm: Normalisation, rows: number): Float32Array {
  const x = new Float32Array(rows * COLS);
  for (let r = 0; r < rows; r++)
    for (let c = 0; c < COLS; c++) {
      const far = rng.next() < 0.1 ? (rng.next() < 0.5 ? -1 : 1) * (CLIP + 1 + rng.next() * 1000) : 0;
      const z = far !== 0 ? far : rng.normal() * 2;
      x[r * COLS + c] = (norm.mean[c] as number) + z * (norm.std[c] as number);
    }
  x[5] = Number.POSITIVE_INFINITY;
  x[COLS + 7] = Number.NEGATIVE_INFINITY;
  x[2 * COLS + 3] = Number.NaN;
  return x;
}

function metadata(norm: Normalisation, calibration: Calibration, architecture: Architecture): ModelMetadata {
  return testModelMetadata({ normalisation: norm, calibration, architecture, name: 'fast-path-test' });
}

/** The old path, written out: JS normalise (clip included) -> LayersModel.predict -> calibration. */
function reference(
  model: tfTypes.LayersModel,
  norm: Normalisation,
  cal: Calibration,
  x: Float32Array,
  rows: number,
): Float32Array {
  const z = normalise(norm, x, rows);
  const out = new Float32Array(rows);
  for (let start = 0; start < rows; start += CHUNK_ROWS) {
    const n = Math.min(CHUNK_ROWS, rows - start);
    const t = tf.tensor2d(z.subarray(start * COLS, (start + n) * COLS), [n, COLS]);
    const y = model.predict(t, { batchSize: n }) as tfTypes.Tensor;
    out.set(y.dataSync() as Float32Array, start);
    t.dispose();
    y.dispose();
  }
  return applyCalibrationInPlace(cal, out);
}

/** The largest |a - b| over the rows whose input `x` (if given) has no NaN. */
function maxAbsDiff(a: Float32Array, b: Float32Array, x?: Float32Array): number {
  expect(a.length).toBe(b.length);
  let d = 0;
  for (let i = 0; i < a.length; i++) {
    if (x?.subarray(i * COLS, (i + 1) * COLS).some(Number.isNaN)) continue;
    const e = Math.abs((a[i] as number) - (b[i] as number));
    if (!(e <= d)) d = Number.isNaN(e) ? Number.POSITIVE_INFINITY : e;
  }
  return d;
}

/** Positions where a and b differ (Object.is), at most 5 of them: [] when equal. */
function differences(a: Float32Array, b: Float32Array): number[] {
  expect(a.length).toBe(b.length);
  const at: number[] = [];
  for (let i = 0; i < a.length && at.length < 5; i++) if (!Object.is(a[i], b[i])) at.push(i);
  return at;
}

const PLATT: Calibration = { method: 'platt', a: 1.3, b: -0.4 };
const STEEP_PLATT: Calibration = { method: 'platt', a: 3, b: -4 };
const ISOTONIC: Calibration = {
  method: 'isotonic',
  x: [0.001, 0.1, 0.3, 0.5, 0.8, 0.999],
  y: [0, 0.05, 0.2, 0.5, 0.9, 1],
};
const IDENTITY: Calibration = { method: 'identity' };

async function saved(
  name: string,
  hidden: number[],
  cal: Calibration,
  seed: number,
): Promise<{ dir: string; model: tfTypes.LayersModel; norm: Normalisation }> {
  const arch = { hidden, dropout: 0.1, l2: 1e-5 };
  const model = await createModel(info, arch, seed);
  // a fresh model's biases are zero; a trained one's are not (and a bias add rounds)
  const rng = new Rng(seed, 'bias');
  for (const layer of model.layers) {
    const [kernel, bias] = layer.getWeights();
    if (kernel && bias)
      layer.setWeights([kernel, tf.tensor1d(Array.from({ length: bias.size }, () => rng.normal() * 0.5))]);
  }
  const norm = randomNormalisation(new Rng(seed, 'norm'));
  const dir = join(root, name);
  await saveModelDir(dir, model, metadata(norm, cal, arch));
  return { dir, model, norm };
}

describe('scoring fast path', () => {
  it('normalises in one SIMD pass with exactly the float32 results of TF.js sub, mul and clipByValue', () => {
    const rng = new Rng(1, 'simd');
    for (const cols of [COLS, 7, 1]) {
      const norm = {
        mean: Array.from({ length: cols }, () => rng.normal()),
        std: Array.from({ length: cols }, () => 0.1 + rng.next()),
      };
      const simd = SimdNormaliser.create(norm.mean, norm.std, CLIP);
      expect(simd).toBeDefined();
      for (const rows of [1, 3, 1001]) {
        const x = Float32Array.from({ length: rows * cols }, () => rng.normal() * 50);
        x[0] = Number.NaN;
        const got = simd?.normalise(x, rows, cols);
        const want = tf.tidy(() =>
          tf
            .clipByValue(
              tf.mul(
                tf.sub(tf.tensor2d(x, [rows, cols]), tf.tensor2d(norm.mean, [1, cols])),
                tf.tensor2d(
                  norm.std.map((s) => 1 / s),
                  [1, cols],
                ),
              ),
              -CLIP,
              CLIP,
            )
            .dataSync(),
        );
        expect(Array.from(got ?? [])).toEqual(Array.from(want));
      }
    }
  });

  it('calibrates exactly as applyCalibration (isotonic, identity), and Platt from logits within 1e-5', () => {
    const rng = new Rng(2, 'cal');
    const scores = Float32Array.from({ length: 5000 }, () =>
      Math.fround(1 / (1 + Math.exp(-rng.normal() * 3))),
    );
    const labels = Float32Array.from(scores, (p) => (rng.next() < p ? 1 : 0));
    const fitted = fitIsotonic(scores, labels);
    const knots = fitted.method === 'isotonic' ? fitted.x : [];
    // probe the knots themselves, their float32 neighbours, the ends and beyond, NaN
    const probes = Float32Array.from([
      ...scores,
      ...knots.flatMap((k) => [k, Math.fround(k) * (1 + 2 ** -23), Math.fround(k) * (1 - 2 ** -23)]),
      0,
      1,
      -1,
      2,
      Number.NaN,
    ]);
    const isotonics: Calibration[] = [
      fitted,
      ISOTONIC,
      compressIsotonic({
        method: 'isotonic',
        x: [0.2, 0.2, 0.4, 0.4, 0.4, 0.9],
        y: [0, 0.3, 0.3, 0.5, 0.6, 1],
      }),
      { method: 'isotonic', x: [0.5], y: [0.7] },
      { method: 'isotonic', x: [], y: [] },
      IDENTITY,
      PLATT,
    ];
    for (const cal of isotonics) {
      const got = new Float32Array(probes.length);
      finisher(cal, false)(probes, probes.length, got, 0);
      const want = Float32Array.from(probes, (p) => applyCalibration(cal, p));
      expect(differences(got, want)).toEqual([]);
    }
    for (const cal of [PLATT, STEEP_PLATT, { method: 'platt', a: 0.5, b: 2 } as const]) {
      const logits = Float32Array.from({ length: 5000 }, () => rng.normal() * 10);
      logits[0] = 40;
      logits[1] = -40;
      const got = new Float32Array(logits.length);
      finisher(cal, true)(logits, logits.length, got, 0);
      // the old path calibrated TF.js's float32 sigmoid: near p = 1 its rounding moves logit(p) a little
      const want = Float32Array.from(logits, (z) =>
        applyCalibration(cal, Math.fround(1 / (1 + Math.exp(-z)))),
      );
      expect(maxAbsDiff(got, want)).toBeLessThan(1e-5);
      // the same formula in float64 with the logit exact: only the final float32 rounding differs
      const clamp = Math.log((1 - 1e-6) / 1e-6);
      for (let i = 0; i < got.length; i++) {
        const z = Math.min(clamp, Math.max(-clamp, logits[i] as number));
        expect(Math.abs((got[i] as number) - 1 / (1 + Math.exp(-(cal.a * z + cal.b))))).toBeLessThan(1e-7);
      }
    }
  });

  it.each([
    ['platt', [64, 32], PLATT],
    ['steep platt', [64, 32], STEEP_PLATT],
    ['isotonic', [64, 32], ISOTONIC],
    ['identity', [64, 32], IDENTITY],
    ['no hidden layer', [], PLATT],
    ['three hidden layers', [24, 12, 6], ISOTONIC],
  ] as const)('equals normalise -> LayersModel.predict -> calibration (%s)', async (name, hidden, cal) => {
    const { dir, model, norm } = await saved(name.replace(/ /g, '-'), [...hidden], cal, 7 + hidden.length);
    const fast = await Predictor.load(dir);
    const viaTf = await Predictor.load(dir, { engine: 'tfjs' });
    const old = await Predictor.load(dir, { fast: false });
    try {
      expect(fast.path).toBe('fused');
      expect(fast.engine).toBe('wasm-kernel');
      expect(viaTf.engine).toBe('tfjs');
      expect(old.path).toBe('layers');
      const x = randomRows(new Rng(hidden.length, 'rows'), norm, ROWS);
      const before = x.slice();
      const got = fast.score(x, ROWS);
      expect(differences(x, before)).toEqual([]);
      // the WASM kernel and TF.js's fused matmuls: the same float32 operations in the same order
      expect(differences(got, viaTf.score(x, ROWS))).toEqual([]);
      const want = old.score(x, ROWS);
      // The old path itself (TF.js normalisation): same kernels, so only Platt, computed from the logit in
      // JS instead of from TF.js's float32 sigmoid, may differ, by float rounding.
      if (cal.method === 'platt') expect(maxAbsDiff(got, want)).toBeLessThan(1e-6);
      else expect(differences(got, want)).toEqual([]);
      // ...and the formula written out with the JS `normalise` (float64 intermediate, rounded once). Rows
      // with a NaN are left out: `normalise` keeps the NaN, while TF.js's clipByValue (XNNPACK's clamp) on
      // the serving path, old and new, turns it into -CLIP.
      const ref = reference(model, norm, cal, x, ROWS);
      expect(maxAbsDiff(got, ref, x)).toBeLessThan(1e-5);
      // rows beyond the clip score like rows at the clip
      const clipped = new Float32Array(COLS);
      const beyond = new Float32Array(COLS);
      for (let c = 0; c < COLS; c++) {
        const m = norm.mean[c] as number;
        const s = norm.std[c] as number;
        clipped[c] = c % 2 ? m + CLIP * s : m - CLIP * s;
        beyond[c] = c % 2 ? m + 1e6 * s : m - 1e6 * s;
      }
      expect(fast.score(beyond, 1)[0]).toBeCloseTo(fast.score(clipped, 1)[0] as number, 5);
    } finally {
      fast.dispose();
      viaTf.dispose();
      old.dispose();
      model.dispose();
    }
  });

  it('runs sigmoid hidden layers and a bias-free layer as Dense.call does', async () => {
    const norm = randomNormalisation(new Rng(4, 'norm'));
    const model = tf.sequential();
    model.add(tf.layers.dense({ units: 16, activation: 'sigmoid', inputShape: [COLS] }));
    model.add(tf.layers.dense({ units: 8, activation: 'linear', useBias: false }));
    model.add(tf.layers.dense({ units: 8, activation: 'relu' }));
    model.add(tf.layers.dense({ units: 1, activation: 'sigmoid' }));
    const rng = new Rng(4, 'bias');
    for (const layer of model.layers) {
      const [kernel, bias] = layer.getWeights();
      if (kernel && bias)
        layer.setWeights([kernel, tf.tensor1d(Array.from({ length: bias.size }, () => rng.normal()))]);
    }
    for (const cal of [ISOTONIC, PLATT]) {
      const dir = join(root, `sigmoid-hidden-${cal.method}`);
      await saveModelDir(dir, model, metadata(norm, cal, { hidden: [16, 8, 8], dropout: 0, l2: 0 }));
      const fast = await Predictor.load(dir);
      const old = await Predictor.load(dir, { fast: false });
      expect(fast.path).toBe('fused');
      // the WASM kernel runs relu/linear layers only: TF.js fused matmuls here
      expect(fast.engine).toBe('tfjs');
      const x = randomRows(new Rng(4, 'rows'), norm, CHUNK_ROWS + 3);
      const got = fast.score(x, CHUNK_ROWS + 3);
      const want = old.score(x, CHUNK_ROWS + 3);
      if (cal.method === 'platt') expect(maxAbsDiff(got, want)).toBeLessThan(1e-6);
      else expect(differences(got, want)).toEqual([]);
      fast.dispose();
      old.dispose();
    }
  });

  it('runs bias-free layers, widths that are not multiples of 8 and a linear output on the WASM kernel', async () => {
    const norm = randomNormalisation(new Rng(10, 'norm'));
    const build = (last: 'linear' | 'sigmoid') => {
      const model = tf.sequential();
      model.add(tf.layers.dense({ units: 13, activation: 'relu', useBias: false, inputShape: [COLS] }));
      model.add(tf.layers.dense({ units: 5, activation: 'linear' }));
      model.add(tf.layers.dense({ units: 9, activation: 'relu' }));
      model.add(tf.layers.dense({ units: 1, activation: last, useBias: last === 'linear' }));
      const rng = new Rng(10, last);
      for (const layer of model.layers) {
        const [kernel, bias] = layer.getWeights();
        if (kernel && bias)
          layer.setWeights([kernel, tf.tensor1d(Array.from({ length: bias.size }, () => rng.normal()))]);
      }
      return model;
    };
    for (const [last, cal] of [
      ['linear', IDENTITY],
      ['sigmoid', ISOTONIC],
      ['sigmoid', PLATT],
    ] as const) {
      const model = build(last);
      const dir = join(root, `kernel-${last}-${cal.method}`);
      await saveModelDir(dir, model, metadata(norm, cal, { hidden: [13, 5, 9], dropout: 0, l2: 0 }));
      const fast = await Predictor.load(dir);
      const old = await Predictor.load(dir, { fast: false });
      expect(fast.engine).toBe('wasm-kernel');
      const rows = 2 * 2048 + 3;
      const x = randomRows(new Rng(10, 'rows'), norm, rows);
      const got = fast.score(x, rows);
      const want = old.score(x, rows);
      if (cal.method === 'platt') expect(maxAbsDiff(got, want)).toBeLessThan(1e-6);
      else expect(differences(got, want)).toEqual([]);
      fast.dispose();
      old.dispose();
      model.dispose();
    }
  });

  it('scores the shipped model as the old path does', async () => {
    const dir = join(import.meta.dirname, '../../models/default');
    const fast = await Predictor.load(dir);
    const old = await Predictor.load(dir, { fast: false });
    const x = randomRows(new Rng(6, 'rows'), fast.meta.normalisation, CHUNK_ROWS + 100);
    const got = fast.score(x, CHUNK_ROWS + 100);
    const want = old.score(x, CHUNK_ROWS + 100);
    if (fast.meta.calibration.method === 'platt') expect(maxAbsDiff(got, want)).toBeLessThan(1e-6);
    else expect(differences(got, want)).toEqual([]);
    fast.dispose();
    old.dispose();
  });

  it('normalises the same in TF.js heap, in its own memory and with TF.js ops', async () => {
    const { dir, model, norm } = await saved('modes', [16, 8], ISOTONIC, 8);
    const modes = ['wasm-simd-in-place', 'wasm-simd', 'tfjs'] as const;
    // the TF.js engine (the WASM kernel normalises in its own memory)
    const predictors = await Promise.all(
      modes.map((normalise) => Predictor.load(dir, { normalise, engine: 'tfjs' })),
    );
    expect(predictors.map((p) => p.normalisation)).toEqual([...modes]);
    expect((await Predictor.load(dir, { engine: 'tfjs' })).normalisation).toBe('wasm-simd-in-place');
    const x = randomRows(new Rng(8, 'rows'), norm, CHUNK_ROWS + 7);
    // row counts with 0-3 rows beyond whole 4-row patterns, and beyond a chunk
    for (const rows of [1, 2, 3, 4, 5, 6, 7, 1001, CHUNK_ROWS + 7]) {
      const [inPlace, own, ops] = predictors.map((p) => p.score(x, rows));
      expect(differences(inPlace as Float32Array, ops as Float32Array)).toEqual([]);
      expect(differences(own as Float32Array, ops as Float32Array)).toEqual([]);
    }
    for (const p of predictors) p.dispose();
    model.dispose();
  });

  it('scores one row and an empty batch', async () => {
    const { dir, model, norm } = await saved('small', [8], PLATT, 3);
    const fast = await Predictor.load(dir);
    const x = randomRows(new Rng(3, 'one'), norm, 3);
    const want = fast.score(x, 3);
    expect(maxAbsDiff(want, reference(model, norm, PLATT, x, 3), x)).toBeLessThan(1e-5);
    for (let r = 0; r < 3; r++) expect(fast.score(x.subarray(r * COLS, (r + 1) * COLS), 1)[0]).toBe(want[r]);
    expect(fast.score(new Float32Array(0), 0)).toEqual(new Float32Array(0));
    fast.dispose();
    model.dispose();
  });

  it('gives the in-process numbers through the worker pool, for plain and shared matrices', async () => {
    const { dir, norm } = await saved('pool', [64, 32], PLATT, 5);
    const rows = 3 * CHUNK_ROWS * 4 + 777; // several slices per thread, a ragged last chunk
    const x = randomRows(new Rng(5, 'pool'), norm, rows);
    const shared = new Float32Array(new SharedArrayBuffer(x.byteLength));
    shared.set(x);
    const before = x.slice();
    const scorer = await loadScorer(dir, { workers: 2, poolMinRows: 1000 });
    try {
      const local = scorer.scoreLocal(x, rows);
      const [plain, onShared] = await Promise.all([scorer.score(x, rows), scorer.score(shared, rows)]);
      expect(differences(plain, local)).toEqual([]);
      expect(differences(onShared, local)).toEqual([]);
      expect(differences(x, before)).toEqual([]);
      expect(differences(shared, before)).toEqual([]);
      // a sub-view with an offset, and a second round on recycled buffers
      const view = x.subarray(100 * COLS, (100 + 5000) * COLS);
      expect(differences(await scorer.score(view, 5000), local.subarray(100, 5100))).toEqual([]);
      expect(differences(await scorer.score(x, rows), local)).toEqual([]);
    } finally {
      await scorer.close();
    }
  });

  it('falls back to LayersModel.predict for a model that is not a chain of relu/linear/sigmoid Dense layers', async () => {
    const norm = randomNormalisation(new Rng(9, 'norm'));
    const model = tf.sequential();
    model.add(tf.layers.dense({ units: 8, activation: 'tanh', inputShape: [COLS] }));
    model.add(tf.layers.dense({ units: 1, activation: 'sigmoid' }));
    const chain = denseChain(model);
    expect(chain).toBeInstanceOf(UnsupportedModelError);
    expect((chain as Error).message).toMatch(/activation tanh/);
    const dir = join(root, 'tanh');
    await saveModelDir(dir, model, metadata(norm, PLATT, { hidden: [8], dropout: 0, l2: 0 }));
    const p = await Predictor.load(dir);
    expect(p.path).toBe('layers');
    expect(p.fallbackReason).toMatch(/tanh/);
    const x = randomRows(new Rng(9, 'rows'), norm, 100);
    expect(maxAbsDiff(p.score(x, 100), reference(model, norm, PLATT, x, 100), x)).toBeLessThan(1e-5);
    p.dispose();

    const bn = tf.sequential();
    bn.add(tf.layers.dense({ units: 4, activation: 'relu', inputShape: [COLS] }));
    bn.add(tf.layers.batchNormalization());
    bn.add(tf.layers.dense({ units: 1, activation: 'sigmoid' }));
    expect((denseChain(bn) as Error).message).toMatch(/BatchNormalization/);
  });
});
