/**
 * Model throughput: calibrated pd rows/s for a 1,000,000-account book through the scorer (worker-thread
 * pool, chunked predict with explicit batchSize) beside stock `model.predict` (default batchSize) on the
 * same backend; and training seconds per epoch on 1,000,000 rows beside TF.js `fit` with its defaults.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import type * as tfTypes from '@tensorflow/tfjs';
import { FEATURE_COUNT, FEATURE_SCHEMA_HASH, featureSchemaInfo } from '../src/features/schema.js';
import { saveModelDir } from '../src/model/artifacts.js';
import { createModel, DEFAULT_ARCHITECTURE } from '../src/model/create-model.js';
import { loadScorer } from '../src/model/scorer.js';
import { Rng } from '../src/sim/random.js';
import { initTf } from '../src/tf/runtime.js';
import { fitModel } from '../training/fit.js';
import { printRatio } from './report.js';

function randomRows(rows: number, seed: number): Float32Array {
  const rng = new Rng(seed, 'bench-rows');
  const x = new Float32Array(rows * FEATURE_COUNT);
  for (let i = 0; i < x.length; i++) x[i] = rng.normal();
  return x;
}

export async function run(): Promise<void> {
  const { tf, backend } = await initTf();
  console.log(
    `backend ${backend}, ${availableParallelism()} cores, ${FEATURE_COUNT} features, MLP ${DEFAULT_ARCHITECTURE.hidden.join('-')}`,
  );
  const dir = mkdtempSync(join(tmpdir(), 'preempt-bench-model-'));
  try {
    const info = featureSchemaInfo();
    const model = await createModel(info, DEFAULT_ARCHITECTURE, 1);
    await saveModelDir(dir, model, {
      name: 'bench',
      createdAt: new Date().toISOString(),
      featureSchema: {
        ...info,
        hash: FEATURE_SCHEMA_HASH,
        names: [...info.names],
        units: [...info.units],
        neutral: [...info.neutral],
      },
      normalisation: { mean: Array(FEATURE_COUNT).fill(0), std: Array(FEATURE_COUNT).fill(1) },
      calibration: { method: 'platt', a: 1, b: 0 },
      architecture: DEFAULT_ARCHITECTURE,
      horizonMs: 3_600_000,
      everyMs: 300_000,
      seed: 1,
      metrics: { model: {}, baselines: {}, split: 'bench' },
      baselines: {},
      data: { fingerprint: 'bench', files: [], rows: {} },
      training: {},
      versions: {},
    });

    // scoring
    const ROWS = 1_000_000;
    const x = randomRows(ROWS, 1);
    const scorer = await loadScorer(dir, { workers: availableParallelism() });
    await scorer.score(x.subarray(0, 64 * 1024 * FEATURE_COUNT), 64 * 1024); // warm up
    let t0 = performance.now();
    const pd = await scorer.score(x, ROWS);
    const poolMs = performance.now() - t0;
    if (pd.length !== ROWS) throw new Error('scorer returned the wrong number of rows');
    t0 = performance.now();
    scorer.scoreLocal(x, ROWS);
    const localMs = performance.now() - t0;
    await scorer.close();
    const STOCK = 50_000;
    const xs = tf.tensor2d(x.subarray(0, STOCK * FEATURE_COUNT), [STOCK, FEATURE_COUNT]);
    t0 = performance.now();
    const y = model.predict(xs) as tfTypes.Tensor;
    await y.data();
    const stockMs = performance.now() - t0;
    xs.dispose();
    y.dispose();
    printRatio(
      `scorer, ${scorer.info.backend} x ${availableParallelism()} threads: rows/s`,
      ROWS / (poolMs / 1000),
      `stock model.predict (${STOCK} rows)`,
      STOCK / (stockMs / 1000),
      'rows/s',
      '4 M rows/s on 2 cores',
    );
    printRatio(
      'scorer, one thread in-process: rows/s',
      ROWS / (localMs / 1000),
      'stock model.predict',
      STOCK / (stockMs / 1000),
      'rows/s',
    );

    // training
    const TRAIN = 1_000_000;
    const rng = new Rng(2, 'labels');
    const labels = new Float32Array(TRAIN);
    for (let i = 0; i < TRAIN; i++) labels[i] = (x[i * FEATURE_COUNT] as number) + rng.normal() > 2 ? 1 : 0;
    const train = { x: x.subarray(0, TRAIN * FEATURE_COUNT), y: labels, rows: TRAIN, cols: FEATURE_COUNT };
    const empty = { x: new Float32Array(0), y: new Float32Array(0), rows: 0, cols: FEATURE_COUNT };
    const fresh = await createModel(info, DEFAULT_ARCHITECTURE, 3);
    const fit = await fitModel(fresh, train, empty, { epochs: 1, seed: 1 });
    const epochS = fit.history[0]?.seconds ?? Number.NaN;
    const SMALL = 50_000;
    const stock = await createModel(info, DEFAULT_ARCHITECTURE, 3);
    stock.compile({ optimizer: 'adam', loss: 'binaryCrossentropy' });
    const sx = tf.tensor2d(x.subarray(0, SMALL * FEATURE_COUNT), [SMALL, FEATURE_COUNT]);
    const sy = tf.tensor2d(labels.subarray(0, SMALL), [SMALL, 1]);
    t0 = performance.now();
    await stock.fit(sx, sy, { epochs: 1, verbose: 0 });
    const stockS = ((performance.now() - t0) / 1000) * (TRAIN / SMALL);
    sx.dispose();
    sy.dispose();
    printRatio(
      'training: s per epoch, 1 M rows (batch 1024)',
      epochS,
      `tf fit defaults (batch 32, from ${SMALL} rows)`,
      stockS,
      's',
      'under 15 s',
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
