/**
 * The training loop: mini-batch Adam on normalised rows, a seeded shuffle per epoch (TF.js's own shuffle
 * uses an unseeded Math.random), positive-class weighting for the imbalance (defaults are rare), early
 * stopping on the validation log-loss with the best epoch's weights restored.
 *
 * Dropout gets a fresh seed every batch. A TF.js Dropout layer built with a `seed` draws its mask from a new
 * generator seeded with that same value on every call, so left alone every batch would drop the same units at
 * the same row positions: a fixed set of thinned networks rather than dropout. Reseeding from (layer seed,
 * epoch, batch) keeps training deterministic for a seed and gives each batch its own masks.
 */
import type * as tfTypes from '@tensorflow/tfjs';
import { logLoss } from '../src/model/metrics.js';
import { Rng } from '../src/sim/random.js';
import { initTf } from '../src/tf/runtime.js';

export interface Matrix {
  /** row-major, normalised features */
  x: Float32Array;
  /** 0/1 labels */
  y: Float32Array;
  rows: number;
  cols: number;
}

export interface FitOptions {
  epochs: number;
  /** rows per gradient step */
  batchSize?: number;
  learningRate?: number;
  /** epochs without validation improvement before stopping */
  patience?: number;
  seed: number;
  /** weight of a positive row; default: negatives / positives, capped at 50 */
  positiveWeight?: number;
  onEpoch?: (e: EpochInfo) => void;
  /**
   * Decay of an exponential moving average of the weights, updated after every batch (0 or absent: off). When on,
   * validation, early stopping and the returned model use the averaged weights, not the last step's.
   */
  weightEma?: number;
}

export interface EpochInfo {
  epoch: number;
  epochs: number;
  loss: number;
  valLoss: number;
  /** wall time of the epoch, s */
  seconds: number;
  best: boolean;
}

export interface FitResult {
  history: EpochInfo[];
  bestEpoch: number;
  bestValLoss: number;
  positiveWeight: number;
}

/** Predict (uncalibrated) in chunks with an explicit batch size. */
export function predictRows(
  tf: typeof tfTypes,
  model: tfTypes.LayersModel,
  m: { x: Float32Array; rows: number; cols: number },
): Float32Array {
  const out = new Float32Array(m.rows);
  const chunk = 8192;
  for (let s = 0; s < m.rows; s += chunk) {
    const n = Math.min(chunk, m.rows - s);
    const y = tf.tidy(
      () =>
        model.predict(tf.tensor2d(m.x.subarray(s * m.cols, (s + n) * m.cols), [n, m.cols]), {
          batchSize: n,
        }) as tfTypes.Tensor,
    );
    out.set(y.dataSync() as Float32Array, s);
    y.dispose();
  }
  return out;
}

/** The model's Dropout layers with the seed each was built with (undefined: unseeded, left alone). */
function seededDropouts(model: tfTypes.LayersModel): { layer: { seed?: number }; base: number }[] {
  const out: { layer: { seed?: number }; base: number }[] = [];
  for (const layer of model.layers) {
    const l = layer as unknown as { seed?: number };
    if (layer.getClassName() === 'Dropout' && typeof l.seed === 'number')
      out.push({ layer: l, base: l.seed });
  }
  return out;
}

/**
 * A per-batch dropout seed: distinct for every (layer seed, epoch < 1,000, batch < 1,000,000), exact in a double
 * while layer seeds stay below 9 million (training seeds below about 87,000).
 */
export function dropoutSeed(base: number, epoch: number, batch: number): number {
  return (base * 1_000 + epoch) * 1_000_000 + batch;
}

function shuffled(m: Matrix, rng: Rng): { x: Float32Array; y: Float32Array } {
  const perm = new Uint32Array(m.rows);
  for (let i = 0; i < m.rows; i++) perm[i] = i;
  for (let i = m.rows - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    const t = perm[i] as number;
    perm[i] = perm[j] as number;
    perm[j] = t;
  }
  const x = new Float32Array(m.x.length);
  const y = new Float32Array(m.rows);
  for (let i = 0; i < m.rows; i++) {
    const src = perm[i] as number;
    x.set(m.x.subarray(src * m.cols, (src + 1) * m.cols), i * m.cols);
    y[i] = m.y[src] as number;
  }
  return { x, y };
}

export async function fitModel(
  model: tfTypes.LayersModel,
  train: Matrix,
  val: Matrix,
  opts: FitOptions,
): Promise<FitResult> {
  const { tf } = await initTf();
  let positives = 0;
  for (let i = 0; i < train.rows; i++) positives += train.y[i] as number;
  const positiveWeight =
    opts.positiveWeight ?? Math.min(50, Math.max(1, (train.rows - positives) / Math.max(1, positives)));
  model.compile({ optimizer: tf.train.adam(opts.learningRate ?? 1e-3), loss: 'binaryCrossentropy' });
  const patience = opts.patience ?? 3;
  const dropouts = seededDropouts(model);
  const history: EpochInfo[] = [];
  const ema = opts.weightEma ?? 0;
  if (!(ema >= 0 && ema < 1)) throw new Error(`weightEma must be in [0, 1), got ${ema}`);
  const averaged = ema > 0 ? model.getWeights().map((w) => tf.variable(w.clone(), false)) : [];
  let best = { epoch: 0, valLoss: Number.POSITIVE_INFINITY, weights: [] as tfTypes.Tensor[] };
  for (let epoch = 1; epoch <= opts.epochs; epoch++) {
    const t0 = performance.now();
    const data = shuffled(train, new Rng(opts.seed, `epoch-${epoch}`));
    const xs = tf.tensor2d(data.x, [train.rows, train.cols]);
    const ys = tf.tensor2d(data.y, [train.rows, 1]);
    const h = await model.fit(xs, ys, {
      epochs: 1,
      batchSize: opts.batchSize ?? 1024,
      shuffle: false,
      verbose: 0,
      classWeight: { 0: 1, 1: positiveWeight },
      callbacks: {
        onBatchBegin: (batch: number) => {
          for (const d of dropouts) d.layer.seed = dropoutSeed(d.base, epoch, batch);
        },
        onBatchEnd: () => {
          if (averaged.length === 0) return;
          const current = model.getWeights();
          tf.tidy(() => {
            for (let i = 0; i < averaged.length; i++) {
              const a = averaged[i] as tfTypes.Variable;
              a.assign(a.mul(ema).add((current[i] as tfTypes.Tensor).mul(1 - ema)));
            }
          });
        },
      },
    });
    xs.dispose();
    ys.dispose();
    const loss = Number(h.history.loss?.[0] ?? Number.NaN);
    // with averaging, the averaged weights are the candidate: swap them in to validate, then back
    const stepWeights = averaged.length > 0 ? model.getWeights().map((w) => w.clone()) : [];
    if (averaged.length > 0) model.setWeights(averaged);
    const valLoss = val.rows > 0 ? logLoss(predictRows(tf, model, val), val.y) : loss;
    const isBest = valLoss < best.valLoss - 1e-6;
    if (isBest) {
      for (const w of best.weights) w.dispose();
      best = { epoch, valLoss, weights: model.getWeights().map((w) => w.clone()) };
    }
    if (stepWeights.length > 0) {
      model.setWeights(stepWeights);
      for (const w of stepWeights) w.dispose();
    }
    const info = {
      epoch,
      epochs: opts.epochs,
      loss,
      valLoss,
      seconds: (performance.now() - t0) / 1000,
      best: isBest,
    };
    history.push(info);
    opts.onEpoch?.(info);
    if (epoch - best.epoch >= patience) break;
  }
  for (const d of dropouts) d.layer.seed = d.base;
  for (const a of averaged) a.dispose();
  if (best.weights.length > 0) {
    model.setWeights(best.weights);
    for (const w of best.weights) w.dispose();
  }
  return { history, bestEpoch: best.epoch, bestValLoss: best.valLoss, positiveWeight };
}
