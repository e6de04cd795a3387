/**
 * Held-out evaluation: every metric the issue names, for the model and each baseline, computed the same
 * way; plus permutation feature importance (drop in ROC-AUC when one column is shuffled).
 */

import {
  brier,
  ece,
  eceEqualMass,
  median,
  prAuc,
  recallAtAlertRate,
  rocAuc,
  thresholdAtAlertRate,
} from '../src/model/metrics.js';
import { Rng } from '../src/sim/random.js';
import { type LiquidationTimes, leadTimesMin } from './labels.js';
import type { SplitMatrix } from './splits.js';

export interface Metrics extends Record<string, number | null> {
  rows: number;
  positives: number;
  rocAuc: number | null;
  prAuc: number | null;
  brier: number | null;
  /** over 10 equal-width bins */
  ece: number | null;
  /** over 10 equal-mass bins (see `eceEqualMass`); models trained before it was added lack it */
  eceEqualMass: number | null;
  recallAt1pct: number | null;
  recallAt5pct: number | null;
  /** minutes from the first alert (5% alert rate threshold) to the liquidation, median */
  medianLeadMin: number | null;
  /** liquidations whose last snapshot was alerted / all with a snapshot just before */
  liquidationsAlerted: number | null;
  rocAucUnseen: number | null;
}

const finiteOrNull = (v: number): number | null => (Number.isFinite(v) ? v : null);

export function evaluate(
  pd: Float32Array,
  test: SplitMatrix,
  liquidations: LiquidationTimes,
  everyMs: number,
): Metrics {
  const threshold = thresholdAtAlertRate(pd, 0.05);
  const { leads, missed } = leadTimesMin(test.ts, test.account, pd, threshold, liquidations, everyMs);
  const unseenIdx: number[] = [];
  for (let i = 0; i < test.rows; i++) if (test.unseen[i]) unseenIdx.push(i);
  const unseenPd = unseenIdx.map((i) => pd[i] as number);
  const unseenY = unseenIdx.map((i) => test.y[i] as number);
  let positives = 0;
  for (const v of test.y) positives += v;
  return {
    rows: test.rows,
    positives,
    rocAuc: finiteOrNull(rocAuc(pd, test.y)),
    prAuc: finiteOrNull(prAuc(pd, test.y)),
    brier: finiteOrNull(brier(pd, test.y)),
    ece: finiteOrNull(ece(pd, test.y)),
    eceEqualMass: finiteOrNull(eceEqualMass(pd, test.y)),
    recallAt1pct: finiteOrNull(recallAtAlertRate(pd, test.y, 0.01)),
    recallAt5pct: finiteOrNull(recallAtAlertRate(pd, test.y, 0.05)),
    medianLeadMin: finiteOrNull(median(leads)),
    liquidationsAlerted: leads.length + missed > 0 ? leads.length / (leads.length + missed) : null,
    rocAucUnseen: finiteOrNull(rocAuc(unseenPd, unseenY)),
  };
}

/** ROC-AUC drop when each feature column is permuted (on at most `maxRows` test rows). */
export async function permutationImportance(
  score: (x: Float32Array, rows: number) => Promise<Float32Array>,
  test: SplitMatrix,
  names: readonly string[],
  seed: number,
  maxRows = 40_000,
): Promise<{ feature: string; aucDrop: number }[]> {
  const rows = Math.min(test.rows, maxRows);
  const cols = test.cols;
  const x = test.x.slice(0, rows * cols);
  const y = test.y.subarray(0, rows);
  const base = rocAuc(await score(x, rows), y);
  const out: { feature: string; aucDrop: number }[] = [];
  const rng = new Rng(seed, 'permutation-importance');
  for (let c = 0; c < cols; c++) {
    const column = new Float32Array(rows);
    for (let r = 0; r < rows; r++) column[r] = x[r * cols + c] as number;
    const perm = column.slice();
    for (let i = rows - 1; i > 0; i--) {
      const j = rng.int(i + 1);
      const t = perm[i] as number;
      perm[i] = perm[j] as number;
      perm[j] = t;
    }
    for (let r = 0; r < rows; r++) x[r * cols + c] = perm[r] as number;
    const auc = rocAuc(await score(x, rows), y);
    for (let r = 0; r < rows; r++) x[r * cols + c] = column[r] as number;
    out.push({ feature: names[c] ?? String(c), aucDrop: base - auc });
  }
  return out.sort((a, b) => b.aucDrop - a.aucDrop);
}
