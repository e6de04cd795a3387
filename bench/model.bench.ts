/**
 * Model throughput: calibrated pd rows/s for a 1,000,000-account book through the scorer (worker-thread
 * pool, fused fast path) beside stock `model.predict` (default batchSize) on the same backend, for the
 * default architecture or each of PREEMPT_BENCH_HIDDEN (e.g. "64-32,48-24,32-32,32-16"); and training
 * seconds per epoch on 1,000,000 rows beside TF.js `fit` with its defaults (default architecture). Set
 * PREEMPT_BENCH_SKIP_TRAINING=1 to measure scoring only.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import type * as tfTypes from '@tensorflow/tfjs';
import { FEATURE_COUNT, FEATURE_SCHEMA_HASH, featureSchemaInfo } from '../src/features/schema.js';
import { saveModelDir } from '../src/model/artifacts.js';
import { type Architecture, createModel, DEFAULT_ARCHITECTURE } from '../src/model/create-model.js';
import { loadScorer } from '../src/model/scorer.js';
import { Rng } from '../src/sim/random.js';
import { initTf } from '../src/tf/runtime.js';
import { installTransposedMatMul, restoreStockMatMul } from '../src/tf/wasm-transposed-matmul.js';
import { fitModel } from '../training/fit.js';
import { printRatio } from './report.js';

function randomRows(rows: number, seed: number): Float32Array {
  const rng = new Rng(seed, 'bench-rows');
  const x = new Float32Array(rows * FEATURE_COUNT);
  for (let i = 0; i < x.length; i++) x[i] = rng.normal();
  return x;
}

interface ScoringRun {
  /** best and median rows/s over the timed runs */
  best: number;
  median: number;
}

function summarise(ms: number[], rows: number): ScoringRun {
  const rates = ms.map((m) => rows / (m / 1000)).sort((a, b) => a - b);
  return { best: rates[rates.length - 1] as number, median: rates[Math.floor(rates.length / 2)] as number };
}

function fmtM(n: number): string {
  return `${(n / 1e6).toFixed(2)} M`;
}

/** `hidden` sizes to measure: PREEMPT_BENCH_HIDDEN="64-32,48-24,32-32,32-16", else the default architecture */
function architectures(): Architecture[] {
  const env = process.env.PREEMPT_BENCH_HIDDEN;
  if (!env) return [DEFAULT_ARCHITECTURE];
  return env.split(',').map((h) => ({
    ...DEFAULT_ARCHITECTURE,
    hidden: h
      .split('-')
      .filter((u) => u !== '')
      .map(Number),
  }));
}

/**
 * A bench model directory: `arch` with seed 1, identity normalisation, and the shipped model's scoring stages:
 * the second stage on liq_dist_sigma, then Platt.
 */
async function benchModel(dir: string, arch: Architecture): Promise<tfTypes.LayersModel> {
  const info = featureSchemaInfo();
  const model = await createModel(info, arch, 1);
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
    stack: { features: ['liq_dist_sigma'], offset: 0.05, wLogit: 0.7, wFeatures: [-0.25], bias: -3.7 },
    calibration: { method: 'platt', a: 1.02, b: 0.01 },
    architecture: arch,
    horizonMs: 3_600_000,
    everyMs: 300_000,
    seed: 1,
    metrics: { model: {}, baselines: {}, split: 'bench' },
    baselines: {},
    data: { fingerprint: 'bench', files: [], rows: {} },
    training: {},
    versions: {},
  });
  return model;
}

/**
 * Calibrated rows/s for a 1,000,000-row book through the scorer: the worker pool on a plain Float32Array
 * (copied to the workers slice by slice) and on a SharedArrayBuffer (read in place, as `snapshotParallel`
 * produces it), one thread in-process, and stock `model.predict` (default batchSize) as the baseline.
 */
async function benchScoring(
  tf: typeof tfTypes,
  x: Float32Array,
  shared: Float32Array,
  rows: number,
  arch: Architecture,
): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'preempt-bench-model-'));
  const cores = availableParallelism();
  try {
    const model = await benchModel(dir, arch);
    const scorer = await loadScorer(dir, { workers: cores });
    const how = scorer.scoring;
    console.log(
      `MLP ${FEATURE_COUNT}-${[...arch.hidden, 1].join('-')}: ${how.path} path, layers on ${how.engine}${how.engineFallback && how.path === 'fused' ? ` (${how.engineFallback})` : ''}, normalisation ${how.normalisation}${how.fallbackReason ? ` (layers path: ${how.fallbackReason})` : ''}, ${how.poolThreads} pool threads; load average ${loadavg()[0]?.toFixed(2)}`,
    );
    const warm = 64 * 1024;
    await scorer.score(x.subarray(0, warm * FEATURE_COUNT), warm);
    await scorer.score(shared.subarray(0, warm * FEATURE_COUNT), warm);
    const RUNS = 5;
    const plainMs: number[] = [];
    const sharedMs: number[] = [];
    for (let r = 0; r < RUNS; r++) {
      let t0 = performance.now();
      const pd = await scorer.score(x, rows);
      plainMs.push(performance.now() - t0);
      if (pd.length !== rows) throw new Error('scorer returned the wrong number of rows');
      t0 = performance.now();
      await scorer.score(shared, rows);
      sharedMs.push(performance.now() - t0);
    }
    const localMs: number[] = [];
    for (let r = 0; r < 2; r++) {
      const t0 = performance.now();
      scorer.scoreLocal(x, rows);
      localMs.push(performance.now() - t0);
    }
    await scorer.close();
    const STOCK = 20_000;
    const xs = tf.tensor2d(x.subarray(0, STOCK * FEATURE_COUNT), [STOCK, FEATURE_COUNT]);
    const t0 = performance.now();
    const y = model.predict(xs) as tfTypes.Tensor;
    await y.data();
    const stock = STOCK / ((performance.now() - t0) / 1000);
    xs.dispose();
    y.dispose();
    model.dispose();
    const plain = summarise(plainMs, rows);
    const onShared = summarise(sharedMs, rows);
    const local = summarise(localMs, rows);
    printRatio(
      `scorer, ${scorer.info.backend} x ${cores} threads: rows/s`,
      plain.best,
      `stock model.predict (${STOCK} rows)`,
      stock,
      'rows/s',
      '4 M rows/s on 2 cores',
    );
    printRatio(
      'scorer, matrix on a SharedArrayBuffer: rows/s',
      onShared.best,
      'stock model.predict',
      stock,
      'rows/s',
      '4 M rows/s on 2 cores',
    );
    printRatio('scorer, one thread in-process: rows/s', local.best, 'stock model.predict', stock, 'rows/s');
    console.log(
      `  best of ${RUNS} runs above; medians ${fmtM(plain.median)} (plain), ${fmtM(onShared.median)} (shared), ${fmtM(local.median)} (one thread, of 2) rows/s`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function run(): Promise<void> {
  const { tf, backend } = await initTf();
  console.log(
    `backend ${backend} (SIMD ${tf.env().getBool('WASM_HAS_SIMD_SUPPORT')}, threads ${tf.env().getBool('WASM_HAS_MULTITHREAD_SUPPORT')}), ${availableParallelism()} cores, ${FEATURE_COUNT} features, default MLP ${DEFAULT_ARCHITECTURE.hidden.join('-')}`,
  );
  const info = featureSchemaInfo();
  // scoring
  const ROWS = 1_000_000;
  const x = randomRows(ROWS, 1);
  const shared = new Float32Array(new SharedArrayBuffer(x.byteLength));
  shared.set(x);
  for (const arch of architectures()) await benchScoring(tf, x, shared, ROWS, arch);

  // training
  if (process.env.PREEMPT_BENCH_SKIP_TRAINING === '1') return;
  const TRAIN = 1_000_000;
  const rng = new Rng(2, 'labels');
  const labels = new Float32Array(TRAIN);
  for (let i = 0; i < TRAIN; i++) labels[i] = (x[i * FEATURE_COUNT] as number) + rng.normal() > 2 ? 1 : 0;
  const train = { x: x.subarray(0, TRAIN * FEATURE_COUNT), y: labels, rows: TRAIN, cols: FEATURE_COUNT };
  const empty = { x: new Float32Array(0), y: new Float32Array(0), rows: 0, cols: FEATURE_COUNT };
  const fresh = await createModel(info, DEFAULT_ARCHITECTURE, 3);
  const fit = await fitModel(fresh, train, empty, { epochs: 1, seed: 1 });
  const epochS = fit.history[0]?.seconds ?? Number.NaN;
  // Baselines on TF.js's own matmul kernels (scalar loops for transposed operands): the same training loop on
  // a 200,000-row slice, and stock `fit` with its defaults on 50,000 rows, both scaled to 1 M rows.
  const restored = restoreStockMatMul(tf);
  let ownLoopStockS = Number.NaN;
  let stockS = Number.NaN;
  try {
    const SLICE = 200_000;
    const sliceModel = await createModel(info, DEFAULT_ARCHITECTURE, 3);
    const slice = {
      x: x.subarray(0, SLICE * FEATURE_COUNT),
      y: labels.subarray(0, SLICE),
      rows: SLICE,
      cols: FEATURE_COUNT,
    };
    const sliceFit = await fitModel(sliceModel, slice, empty, { epochs: 1, seed: 1 });
    ownLoopStockS = (sliceFit.history[0]?.seconds ?? Number.NaN) * (TRAIN / SLICE);
    sliceModel.dispose();
    const SMALL = 50_000;
    const stock = await createModel(info, DEFAULT_ARCHITECTURE, 3);
    stock.compile({ optimizer: 'adam', loss: 'binaryCrossentropy' });
    const sx = tf.tensor2d(x.subarray(0, SMALL * FEATURE_COUNT), [SMALL, FEATURE_COUNT]);
    const sy = tf.tensor2d(labels.subarray(0, SMALL), [SMALL, 1]);
    const t0 = performance.now();
    await stock.fit(sx, sy, { epochs: 1, verbose: 0 });
    stockS = ((performance.now() - t0) / 1000) * (TRAIN / SMALL);
    sx.dispose();
    sy.dispose();
    stock.dispose();
  } finally {
    if (restored.length > 0) installTransposedMatMul(tf);
  }
  printRatio(
    'training: s per epoch, 1 M rows (batch 1024)',
    epochS,
    'same loop, TF.js matmul kernels (200k rows)',
    ownLoopStockS,
    's',
    'under 15 s',
  );
  printRatio(
    'training: s per epoch, 1 M rows (batch 1024)',
    epochS,
    'tf fit defaults (batch 32, 50k rows)',
    stockS,
    's',
  );
}
