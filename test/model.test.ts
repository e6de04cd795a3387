import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  FEATURE_COUNT,
  FEATURE_NEUTRAL,
  FEATURE_SCHEMA_HASH,
  featureSchemaInfo,
} from '../src/features/schema.js';
import { type ModelMetadata, readCompatibleMetadata, saveModelDir } from '../src/model/artifacts.js';
import { createModel, DEFAULT_ARCHITECTURE } from '../src/model/create-model.js';
import { fitNormalisation, normalise } from '../src/model/normalisation.js';
import { Predictor } from '../src/model/predictor.js';
import { loadScorer } from '../src/model/scorer.js';
import { Rng } from '../src/sim/random.js';
import { initTf } from '../src/tf/runtime.js';
import { dropoutSeed, fitModel, predictRows } from '../training/fit.js';
import { testModelMetadata } from './helpers/model-metadata.js';

const dir = mkdtempSync(join(tmpdir(), 'preempt-model-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Synthetic rows whose label depends on features 0 and 1 (a learnable rule). */
function synthetic(rows: number, seed: number) {
  const rng = new Rng(seed, 'rows');
  const x = new Float32Array(rows * FEATURE_COUNT);
  const y = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < FEATURE_COUNT; c++) x[r * FEATURE_COUNT + c] = rng.normal() * (c + 1);
    const z = 2 * (x[r * FEATURE_COUNT] as number) - (x[r * FEATURE_COUNT + 1] as number) - 2;
    y[r] = rng.next() < 1 / (1 + Math.exp(-z)) ? 1 : 0;
  }
  return { x, y, rows, cols: FEATURE_COUNT };
}

function metadata(norm: ReturnType<typeof fitNormalisation>, hash = FEATURE_SCHEMA_HASH): ModelMetadata {
  return testModelMetadata({ normalisation: norm, calibration: { method: 'platt', a: 1.1, b: -0.2 }, hash });
}

describe('the default model', () => {
  it('has one sigmoid output per row', async () => {
    const { tf } = await initTf();
    const model = await createModel(featureSchemaInfo(), DEFAULT_ARCHITECTURE, 3);
    const out = predictRows(tf, model, {
      x: new Float32Array(10 * FEATURE_COUNT),
      rows: 10,
      cols: FEATURE_COUNT,
    });
    expect(out.length).toBe(10);
    expect(model.outputs[0]?.shape).toEqual([null, 1]);
    for (const p of out) expect(p > 0 && p < 1).toBe(true);
  });

  it('a 2-epoch fit lowers the loss, deterministically for a seed', async () => {
    const data = synthetic(6000, 1);
    const norm = fitNormalisation(data.x, data.rows, data.cols);
    const train = { ...data, x: normalise(norm, data.x, data.rows) };
    const valRaw = synthetic(2000, 2);
    const val = { ...valRaw, x: normalise(norm, valRaw.x, valRaw.rows) };
    const run = async () => {
      const model = await createModel(featureSchemaInfo(), DEFAULT_ARCHITECTURE, 7);
      const { tf } = await initTf();
      const { logLoss } = await import('../src/model/metrics.js');
      const before = logLoss(predictRows(tf, model, val), val.y);
      const fit = await fitModel(model, train, val, {
        epochs: 2,
        seed: 7,
        batchSize: 256,
        positiveWeight: 1,
        learningRate: 3e-3,
      });
      return { before, fit };
    };
    const a = await run();
    expect(a.fit.history.length).toBe(2);
    expect(a.fit.bestValLoss).toBeLessThan(a.before);
    const second = a.fit.history[1];
    const first = a.fit.history[0];
    expect(second && first && second.loss < first.loss).toBe(true);
    const b = await run();
    expect(b.fit.bestValLoss).toBe(a.fit.bestValLoss);
  });

  it('with weightEma, validates, stops on and returns the averaged weights, deterministically', async () => {
    const { tf } = await initTf();
    const { logLoss } = await import('../src/model/metrics.js');
    const data = synthetic(3000, 5);
    const norm = fitNormalisation(data.x, data.rows, data.cols);
    const train = { ...data, x: normalise(norm, data.x, data.rows) };
    const valRaw = synthetic(1000, 6);
    const val = { ...valRaw, x: normalise(norm, valRaw.x, valRaw.rows) };
    const run = async (weightEma: number) => {
      const model = await createModel(featureSchemaInfo(), DEFAULT_ARCHITECTURE, 9);
      const fit = await fitModel(model, train, val, {
        epochs: 2,
        seed: 9,
        batchSize: 256,
        positiveWeight: 1,
        learningRate: 3e-3,
        weightEma,
      });
      const weights = model.getWeights().map((w) => Array.from(w.dataSync()));
      return { fit, weights, valLoss: logLoss(predictRows(tf, model, val), val.y) };
    };
    const plain = await run(0);
    const averaged = await run(0.9);
    // the model returned is the one validated (the average, not the last step)
    expect(averaged.valLoss).toBeCloseTo(averaged.fit.bestValLoss, 6);
    expect(plain.valLoss).toBeCloseTo(plain.fit.bestValLoss, 6);
    expect(averaged.weights).not.toEqual(plain.weights);
    expect((await run(0.9)).weights).toEqual(averaged.weights);
    // a decay of ~0 keeps only the last step: the plain fit's weights
    const tiny = await run(1e-12);
    const flat = (w: number[][]) => w.flat();
    const a = flat(tiny.weights);
    const b = flat(plain.weights);
    let maxDiff = 0;
    for (let i = 0; i < a.length; i++)
      maxDiff = Math.max(maxDiff, Math.abs((a[i] as number) - (b[i] as number)));
    expect(maxDiff).toBeLessThan(1e-5);
    const model = await createModel(featureSchemaInfo(), DEFAULT_ARCHITECTURE, 9);
    await expect(fitModel(model, train, val, { epochs: 1, seed: 9, weightEma: 1 })).rejects.toThrow(
      /weightEma/,
    );
  });

  it('draws new dropout masks every batch, from seeds that depend only on the training seed', async () => {
    const { tf } = await initTf();
    // TF.js alone: a seeded Dropout layer repeats its mask on every call (why fitModel reseeds it)
    const probe = tf.layers.dropout({ rate: 0.5, seed: 5 });
    const ones = tf.ones([1, 64]);
    const mask = (seed: number) => {
      (probe as unknown as { seed: number }).seed = seed;
      return Array.from(
        (probe.apply(ones, { training: true }) as import('@tensorflow/tfjs').Tensor).dataSync(),
      );
    };
    expect(mask(5)).toEqual(mask(5));
    expect(mask(dropoutSeed(5, 1, 0))).not.toEqual(mask(dropoutSeed(5, 1, 1)));
    ones.dispose();

    const data = synthetic(1000, 4);
    const norm = fitNormalisation(data.x, data.rows, data.cols);
    const train = { ...data, x: normalise(norm, data.x, data.rows) };
    const seen = async () => {
      const model = await createModel(featureSchemaInfo(), DEFAULT_ARCHITECTURE, 7);
      const dropout = model.layers.find((l) => l.getClassName() === 'Dropout') as unknown as { seed: number };
      const base = dropout.seed;
      const seeds: number[] = [];
      let current = base;
      Object.defineProperty(dropout, 'seed', {
        get: () => current,
        set: (v: number) => {
          current = v;
          seeds.push(v);
        },
      });
      await fitModel(
        model,
        train,
        { ...train, rows: 0, x: new Float32Array(0), y: new Float32Array(0) },
        {
          epochs: 2,
          seed: 7,
          batchSize: 400,
          positiveWeight: 1,
        },
      );
      return { base, seeds, after: current };
    };
    const a = await seen();
    // 2 epochs x 3 batches, each its own seed, then the layer's own seed restored
    expect(a.seeds.length).toBe(7);
    expect(new Set(a.seeds.slice(0, 6)).size).toBe(6);
    expect(a.seeds.slice(0, 6)).not.toContain(a.base);
    expect(a.after).toBe(a.base);
    expect((await seen()).seeds).toEqual(a.seeds);
  });

  it('saves and loads a model directory with identical predictions, in process and over the worker pool', async () => {
    const data = synthetic(3000, 3);
    const norm = fitNormalisation(data.x, data.rows, data.cols);
    const model = await createModel(featureSchemaInfo(), DEFAULT_ARCHITECTURE, 11);
    const target = join(dir, 'roundtrip');
    await saveModelDir(target, model, metadata(norm));
    const { tf } = await initTf();
    const expected = predictRows(tf, model, {
      x: normalise(norm, data.x, data.rows),
      rows: data.rows,
      cols: data.cols,
    });
    const predictor = await Predictor.load(target);
    const pd = predictor.score(data.x, data.rows);
    // calibration a=1.1, b=-0.2 applied on top of the network output
    const p0 = expected[0] as number;
    const calibrated0 = 1 / (1 + Math.exp(-(1.1 * Math.log(p0 / (1 - p0)) - 0.2)));
    expect(pd[0]).toBeCloseTo(calibrated0, 5);
    const scorer = await loadScorer(target, { workers: 2, poolMinRows: 1000 });
    try {
      const pooled = await scorer.score(data.x, data.rows);
      expect(Array.from(pooled)).toEqual(Array.from(pd));
      expect(scorer.info.schemaHash).toBe(FEATURE_SCHEMA_HASH);
      const row = data.x.slice(0, FEATURE_COUNT);
      const top = await scorer.explain(row, 3);
      expect(top.length).toBeLessThanOrEqual(3);
      for (const c of top) expect(c.deltaPd).toBeGreaterThan(0);
      // a row already at every neutral value has nothing pushing it up relative to neutral
      expect(await scorer.explain(FEATURE_NEUTRAL.slice(), 3)).toEqual([]);
    } finally {
      await scorer.close();
    }
  });

  it('serves a two-stage model: network, then the stage on the raw distance column, then calibration, on every path', async () => {
    const data = synthetic(20_000, 4);
    const norm = fitNormalisation(data.x, data.rows, data.cols);
    const model = await createModel(featureSchemaInfo(), DEFAULT_ARCHITECTURE, 12);
    const target = join(dir, 'two-stage');
    const stack = { features: ['liq_dist_sigma'], offset: 0.05, wLogit: 0.6, wFeatures: [-0.3], bias: -1.5 };
    const calibration = { method: 'platt' as const, a: 0.9, b: 0.1 };
    await saveModelDir(target, model, { ...metadata(norm), stack, calibration });
    const { tf } = await initTf();
    const net = predictRows(tf, model, {
      x: normalise(norm, data.x, data.rows),
      rows: data.rows,
      cols: data.cols,
    });
    const col = featureSchemaInfo().names.indexOf('liq_dist_sigma');
    const expected = Array.from(net, (p, i) => {
      const d = Math.max(0, data.x[i * data.cols + col] as number);
      const z = -1.5 + 0.6 * Math.log(p / (1 - p)) - 0.3 * Math.log(0.05 + d);
      const s = 1 / (1 + Math.exp(-z));
      return 1 / (1 + Math.exp(-(0.9 * Math.log(s / (1 - s)) + 0.1)));
    });
    const fused = await Predictor.load(target);
    const layers = await Predictor.load(target, { fast: false });
    expect(fused.path).toBe('fused');
    const a = fused.score(data.x, data.rows);
    const b = layers.score(data.x, data.rows);
    for (const i of [0, 1, 8191, 8192, 19_999]) {
      expect(a[i]).toBeCloseTo(expected[i] as number, 5);
      expect(b[i]).toBeCloseTo(expected[i] as number, 5);
    }
    // the distance matters: the same rows with every distance at the cap score lower
    const far = data.x.slice();
    for (let i = 0; i < data.rows; i++) far[i * data.cols + col] = 50;
    const pFar = fused.score(far, data.rows);
    let lower = 0;
    for (let i = 0; i < data.rows; i++) if ((pFar[i] as number) < (a[i] as number)) lower++;
    expect(lower).toBeGreaterThan(data.rows * 0.9);
    const scorer = await loadScorer(target, { workers: 2, poolMinRows: 1000 });
    try {
      const pooled = await scorer.score(data.x, data.rows);
      expect(Array.from(pooled)).toEqual(Array.from(a));
    } finally {
      await scorer.close();
      fused.dispose();
      layers.dispose();
    }
  });

  it('refuses a model trained on a different feature schema', async () => {
    const norm = { mean: Array(FEATURE_COUNT).fill(0), std: Array(FEATURE_COUNT).fill(1) };
    const model = await createModel(featureSchemaInfo(), DEFAULT_ARCHITECTURE, 1);
    const target = join(dir, 'mismatch');
    await saveModelDir(target, model, metadata(norm, 'f'.repeat(64)));
    await expect(readCompatibleMetadata(target)).rejects.toThrow(/feature schema mismatch/);
    await expect(Predictor.load(target)).rejects.toMatchObject({ code: 'FEATURE_SCHEMA_MISMATCH' });
    // a corrupted metadata file is a clear error too
    const meta = JSON.parse(readFileSync(join(target, 'metadata.json'), 'utf8'));
    meta.calibration = { method: 'magic' };
    writeFileSync(join(target, 'metadata.json'), JSON.stringify(meta));
    await expect(Predictor.load(target)).rejects.toThrow(/field calibration/);
  });
});
