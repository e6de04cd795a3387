/**
 * Splitting labelled rows without leaking the future: training rows end a full horizon before the
 * validation period starts (their labels look ahead by the horizon), a share of traders is held out of
 * training entirely, and the test rows come from other histories (another crash day) when given, else
 * from the last part of the same histories. With calibrate-on histories, early stopping and calibration
 * come from those (other days, other traders) instead, and the training histories fit the network only.
 */

import { Rng } from '../src/sim/random.js';
import { accountBucket, type HistoryRows } from './dataset.js';

export type SplitName = 'train' | 'earlyStop' | 'calibration' | 'test' | 'unused';

export interface SplitPlan {
  /** per history (the training, then the calibrate-on, then the validation histories), per row */
  assign: Uint8Array[];
  /** per history, per row: the account was held out of training (unseen trader) */
  unseen: Uint8Array[];
  description: string;
}

export const SPLIT_CODES: Record<SplitName, number> = {
  train: 0,
  earlyStop: 1,
  calibration: 2,
  test: 3,
  unused: 4,
};

/** share of accounts (by a stable hash) never used for training: the "unseen traders" */
export const HOLDOUT_PERCENT = 20;

/**
 * `calibrate`: histories whose rows serve only early stopping and calibration (split by account, half
 * each), never training. Given any, the rows of the training histories that would have served those
 * splits are trained on: with `validate`, the held-out traders; without, the 60-80% window (the held-out
 * traders stay out of training there: they are the test's unseen traders).
 */
export function planSplits(
  train: HistoryRows[],
  validate: HistoryRows[],
  horizonMs: number,
  calibrate: HistoryRows[] = [],
): SplitPlan {
  const assign: Uint8Array[] = [];
  const unseen: Uint8Array[] = [];
  const external = validate.length > 0;
  const calibrating = calibrate.length > 0;
  // without external test histories: train < 60% of each history's time, validation 60-80%, test >= 80%
  // (with calibrate-on histories there is no validation window: train < 80%)
  const trainEnd = calibrating ? 0.8 : 0.6;
  const valEnd = 0.8;
  for (const h of train) {
    const a = new Uint8Array(h.rows);
    const u = new Uint8Array(h.rows);
    const span = Math.max(1, h.endTs - h.startTs);
    const tTrain = h.startTs + trainEnd * span;
    const tVal = h.startTs + valEnd * span;
    const buckets = h.accounts.map(accountBucket);
    for (let i = 0; i < h.rows; i++) {
      const t = h.ts[i] as number;
      const bucket = buckets[h.account[i] as number] as number;
      const held = bucket < HOLDOUT_PERCENT;
      u[i] = held && !(external && calibrating) ? 1 : 0;
      let s: SplitName;
      if (external)
        // test rows come from other histories: every training history is used over its whole time, the
        // held-out traders (never trained on) serve early stopping and calibration, unless calibrate-on
        // histories do (then they are trained on like the others)
        s = held && !calibrating ? (bucket < HOLDOUT_PERCENT / 2 ? 'earlyStop' : 'calibration') : 'train';
      else if (t + horizonMs <= tTrain) s = held ? 'unused' : 'train';
      else if (t < tTrain)
        s = 'unused'; // purge: its label looks into the validation (or, calibrating, the test) period
      else if (t + horizonMs <= tVal) s = held ? 'unused' : bucket % 2 === 0 ? 'earlyStop' : 'calibration';
      else if (t < tVal) s = 'unused';
      else s = 'test';
      a[i] = SPLIT_CODES[s];
    }
    assign.push(a);
    unseen.push(u);
  }
  for (const h of calibrate) {
    const buckets = h.accounts.map(accountBucket);
    const a = new Uint8Array(h.rows);
    for (let i = 0; i < h.rows; i++)
      a[i] = SPLIT_CODES[(buckets[h.account[i] as number] as number) % 2 === 0 ? 'earlyStop' : 'calibration'];
    assign.push(a);
    unseen.push(new Uint8Array(h.rows).fill(1));
  }
  for (const h of validate) {
    assign.push(new Uint8Array(h.rows).fill(SPLIT_CODES.test));
    unseen.push(new Uint8Array(h.rows).fill(1));
  }
  const files = (hs: HistoryRows[]) => hs.map((h) => h.file).join(', ');
  // other days; other traders only when simulated with another seed (a seed draws its traders, whatever the day)
  const calibrateSplits = `early stopping and calibration: the calibrate-on histories (${files(calibrate)}), split by account, half each`;
  const description = external
    ? calibrating
      ? `train: every account of each training history, over its whole time; ${calibrateSplits}; test: the held-out histories (${files(validate)})`
      : `train: ${100 - HOLDOUT_PERCENT}% of the accounts of each training history, over its whole time; early stopping and calibration: the other ${HOLDOUT_PERCENT}% (traders never trained on), ${HOLDOUT_PERCENT / 2}% each; test: the held-out histories (${files(validate)})`
    : calibrating
      ? `train: first 80% of each history (minus a ${horizonMs / 60000} min purge), ${100 - HOLDOUT_PERCENT}% of accounts; ${calibrateSplits}; test: the last 20%, all accounts (unseen traders reported separately)`
      : `train: first 60% of each history (minus a ${horizonMs / 60000} min purge), ${100 - HOLDOUT_PERCENT}% of accounts; early stopping / calibration: 60-80%, split by account; test: the last 20%, all accounts (unseen traders reported separately)`;
  return { assign, unseen, description };
}

export interface SplitMatrix {
  x: Float32Array;
  y: Float32Array;
  ts: Float64Array;
  /** global account index (history-qualified) */
  account: Uint32Array;
  unseen: Uint8Array;
  rows: number;
  cols: number;
}

/** Column `col` of a split's feature matrix, one value per row. */
export function splitColumn(m: SplitMatrix, col: number): Float32Array {
  const out = new Float32Array(m.rows);
  for (let i = 0; i < m.rows; i++) out[i] = m.x[i * m.cols + col] as number;
  return out;
}

/** Gather the rows of one split from all histories; account indices are made unique across histories. */
export function gather(histories: HistoryRows[], plan: SplitPlan, split: SplitName): SplitMatrix {
  return gatherKept(histories, plan, splitMasks(histories, plan, split));
}

/** Per history, per row: 1 if the row is in `split`, else 0. */
function splitMasks(histories: HistoryRows[], plan: SplitPlan, split: SplitName): Uint8Array[] {
  const code = SPLIT_CODES[split];
  return histories.map((h, k) => {
    const a = plan.assign[k] as Uint8Array;
    const kept = new Uint8Array(h.rows);
    for (let i = 0; i < h.rows; i++) if (a[i] === code) kept[i] = 1;
    return kept;
  });
}

/** Rows flagged 1 in `keep`, over all histories. */
function keptRows(keep: Uint8Array[]): number {
  let rows = 0;
  for (const kept of keep) for (const v of kept) rows += v;
  return rows;
}

/**
 * The rows of each history whose `kept` flag is 1, history after history in row order, as one split matrix;
 * account indices are made unique across histories (offset by the accounts of the histories before).
 */
function gatherKept(histories: HistoryRows[], plan: SplitPlan, keep: Uint8Array[]): SplitMatrix {
  const rows = keptRows(keep);
  const cols = histories[0]?.cols ?? 0;
  const out: SplitMatrix = {
    x: new Float32Array(rows * cols),
    y: new Float32Array(rows),
    ts: new Float64Array(rows),
    account: new Uint32Array(rows),
    unseen: new Uint8Array(rows),
    rows,
    cols,
  };
  let r = 0;
  let accountOffset = 0;
  histories.forEach((h, k) => {
    const kept = keep[k] as Uint8Array;
    const u = plan.unseen[k] as Uint8Array;
    for (let i = 0; i < h.rows; i++) {
      if (kept[i] !== 1) continue;
      out.x.set(h.x.subarray(i * cols, (i + 1) * cols), r * cols);
      out.y[r] = h.y[i] as number;
      out.ts[r] = h.ts[i] as number;
      out.account[r] = accountOffset + (h.account[i] as number);
      out.unseen[r] = u[i] as number;
      r++;
    }
    accountOffset += h.accounts.length;
  });
  return out;
}

/** Labels and some feature columns of a split's rows. */
export interface SplitColumns {
  /** rows x cols, raw feature values: the columns asked for, in the order asked */
  x: Float32Array;
  y: Float32Array;
  rows: number;
  cols: number;
}

/**
 * The feature columns `columns` (indices into the feature schema) and the labels of the rows of
 * `gather(histories, plan, split)`, in its order, without copying the other columns.
 */
export function gatherColumns(
  histories: HistoryRows[],
  plan: SplitPlan,
  split: SplitName,
  columns: readonly number[],
): SplitColumns {
  const keep = splitMasks(histories, plan, split);
  const rows = keptRows(keep);
  const cols = columns.length;
  const out: SplitColumns = { x: new Float32Array(rows * cols), y: new Float32Array(rows), rows, cols };
  let r = 0;
  histories.forEach((h, k) => {
    const kept = keep[k] as Uint8Array;
    for (let i = 0; i < h.rows; i++) {
      if (kept[i] !== 1) continue;
      for (let c = 0; c < cols; c++) out.x[r * cols + c] = h.x[i * h.cols + (columns[c] as number)] as number;
      out.y[r] = h.y[i] as number;
      r++;
    }
  });
  return out;
}

/**
 * One weight per row of `gather(histories, plan, split)` (same order) that gives every history the same
 * total weight in the split, whatever its length: a row of a history contributing n_k of the split's N rows
 * weighs N / (K * n_k), K the number of histories with rows in the split, so the weights average 1. A week
 * of calm markets then counts as one day among the crash days, not as a third of the rows.
 */
export function historyWeights(histories: HistoryRows[], plan: SplitPlan, split: SplitName): Float64Array {
  const code = SPLIT_CODES[split];
  const counts = histories.map((h, k) => {
    const a = plan.assign[k] as Uint8Array;
    let n = 0;
    for (let i = 0; i < h.rows; i++) if (a[i] === code) n++;
    return n;
  });
  const total = counts.reduce((s, n) => s + n, 0);
  const present = counts.filter((n) => n > 0).length;
  const out = new Float64Array(total);
  let r = 0;
  for (const n of counts) {
    if (n > 0) out.fill(total / (present * n), r, r + n);
    r += n;
  }
  return out;
}

/**
 * Keep every default and a seeded `share` of the other rows (order preserved). `share` >= 1 returns the
 * matrix itself.
 */
export function sampleNegatives(m: SplitMatrix, share: number, seed: number): SplitMatrix {
  if (!(share > 0 && share <= 1)) throw new RangeError(`negative sample share ${share} is not in (0, 1]`);
  if (share >= 1) return m;
  const rng = new Rng(seed, 'negative-sample');
  const keep: number[] = [];
  for (let i = 0; i < m.rows; i++) if (m.y[i] === 1 || rng.next() < share) keep.push(i);
  return selectRows(m, keep);
}

/**
 * `sampleNegatives(gather(histories, plan, split), share, seed)`, the same rows in the same order from the same
 * draws, without gathering the unsampled split first: the split's rows are walked in gather order, every
 * default kept and each other row kept if its draw is below `share`, then only the kept rows are copied.
 */
export function gatherSampled(
  histories: HistoryRows[],
  plan: SplitPlan,
  split: SplitName,
  share: number,
  seed: number,
): SplitMatrix {
  if (!(share > 0 && share <= 1)) throw new RangeError(`negative sample share ${share} is not in (0, 1]`);
  if (share >= 1) return gather(histories, plan, split);
  const rng = new Rng(seed, 'negative-sample');
  // the split's rows in gather order: every default kept, each other row drawn for
  const keep = splitMasks(histories, plan, split);
  histories.forEach((h, k) => {
    const kept = keep[k] as Uint8Array;
    for (let i = 0; i < h.rows; i++) if (kept[i] === 1 && h.y[i] !== 1 && !(rng.next() < share)) kept[i] = 0;
  });
  return gatherKept(histories, plan, keep);
}

/** The rows `keep` (indices into `m`, in the order given) of a split matrix, as a new one. */
export function selectRows(m: SplitMatrix, keep: ArrayLike<number>): SplitMatrix {
  const cols = m.cols;
  const out: SplitMatrix = {
    x: new Float32Array(keep.length * cols),
    y: new Float32Array(keep.length),
    ts: new Float64Array(keep.length),
    account: new Uint32Array(keep.length),
    unseen: new Uint8Array(keep.length),
    rows: keep.length,
    cols,
  };
  for (let r = 0; r < keep.length; r++) {
    const src = keep[r] as number;
    out.x.set(m.x.subarray(src * cols, (src + 1) * cols), r * cols);
    out.y[r] = m.y[src] as number;
    out.ts[r] = m.ts[src] as number;
    out.account[r] = m.account[src] as number;
    out.unseen[r] = m.unseen[src] as number;
  }
  return out;
}
