/**
 * Evaluation metrics for default probabilities: ROC-AUC, PR-AUC (average precision), Brier score,
 * expected calibration error, recall at a fixed alert rate, and the curves behind the report's charts.
 * Labels are 0/1; scores are probabilities (or any monotone score for the ranking metrics).
 */

function order(scores: ArrayLike<number>): Uint32Array {
  const idx = new Uint32Array(scores.length);
  for (let i = 0; i < idx.length; i++) idx[i] = i;
  // descending by score
  idx.sort((a, b) => (scores[b] as number) - (scores[a] as number));
  return idx;
}

function countPositives(labels: ArrayLike<number>): number {
  let p = 0;
  for (let i = 0; i < labels.length; i++) if (labels[i] === 1) p++;
  return p;
}

/** ROC-AUC via the rank-sum (Mann-Whitney U) statistic, ties counted as half. NaN without both classes. */
export function rocAuc(scores: ArrayLike<number>, labels: ArrayLike<number>): number {
  const n = scores.length;
  const pos = countPositives(labels);
  const neg = n - pos;
  if (pos === 0 || neg === 0) return Number.NaN;
  const idx = order(scores);
  // walk from the highest score, group ties
  let negAbove = 0;
  let sum = 0; // for each positive: negatives ranked strictly below + half the tied ones
  let i = 0;
  while (i < n) {
    let j = i;
    let p = 0;
    let q = 0;
    const s = scores[idx[i] as number] as number;
    while (j < n && scores[idx[j] as number] === s) {
      if (labels[idx[j] as number] === 1) p++;
      else q++;
      j++;
    }
    // positives in this tie group beat the negatives below them: neg - negAbove - q, and tie with q
    sum += p * (neg - negAbove - q) + p * q * 0.5;
    negAbove += q;
    i = j;
  }
  return sum / (pos * neg);
}

/** Area under the precision-recall curve as average precision (step-wise, ties grouped). */
export function prAuc(scores: ArrayLike<number>, labels: ArrayLike<number>): number {
  const pos = countPositives(labels);
  if (pos === 0) return Number.NaN;
  const idx = order(scores);
  let tp = 0;
  let seen = 0;
  let ap = 0;
  let i = 0;
  while (i < idx.length) {
    const s = scores[idx[i] as number] as number;
    let groupTp = 0;
    let j = i;
    while (j < idx.length && scores[idx[j] as number] === s) {
      if (labels[idx[j] as number] === 1) groupTp++;
      j++;
    }
    seen += j - i;
    tp += groupTp;
    ap += (groupTp / pos) * (tp / seen);
    i = j;
  }
  return ap;
}

export function brier(probs: ArrayLike<number>, labels: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < probs.length; i++) {
    const d = (probs[i] as number) - (labels[i] as number);
    s += d * d;
  }
  return s / probs.length;
}

export function logLoss(probs: ArrayLike<number>, labels: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < probs.length; i++) {
    const p = Math.min(1 - 1e-7, Math.max(1e-7, probs[i] as number));
    s -= labels[i] === 1 ? Math.log(p) : Math.log(1 - p);
  }
  return s / probs.length;
}

export interface ReliabilityBin {
  lo: number;
  hi: number;
  count: number;
  meanPredicted: number;
  observedRate: number;
}

/** Per-bin count, mean prediction and observed rate; `binOf` maps a probability to its bin index. */
function binStats(
  probs: ArrayLike<number>,
  labels: ArrayLike<number>,
  lo: (b: number) => number,
  hi: (b: number) => number,
  nBins: number,
  binOf: (p: number) => number,
): ReliabilityBin[] {
  const count = new Float64Array(nBins);
  const sumP = new Float64Array(nBins);
  const sumY = new Float64Array(nBins);
  for (let i = 0; i < probs.length; i++) {
    const p = probs[i] as number;
    const b = binOf(p);
    count[b] = (count[b] as number) + 1;
    sumP[b] = (sumP[b] as number) + p;
    sumY[b] = (sumY[b] as number) + (labels[i] as number);
  }
  return Array.from({ length: nBins }, (_, b) => ({
    lo: lo(b),
    hi: hi(b),
    count: count[b] as number,
    meanPredicted: count[b] ? (sumP[b] as number) / (count[b] as number) : 0,
    observedRate: count[b] ? (sumY[b] as number) / (count[b] as number) : 0,
  }));
}

/** Equal-width probability bins with the mean prediction and the observed default rate in each. */
export function reliability(
  probs: ArrayLike<number>,
  labels: ArrayLike<number>,
  bins = 10,
): ReliabilityBin[] {
  return binStats(
    probs,
    labels,
    (b) => b / bins,
    (b) => (b + 1) / bins,
    bins,
    (p) => Math.min(bins - 1, Math.max(0, Math.floor(p * bins))),
  );
}

/**
 * Bins [edges[b], edges[b + 1]) given by their edges (the last also takes everything above it), with the
 * mean prediction and the observed rate in each: reliability over uneven bands such as pd 0.02-0.05.
 */
export function reliabilityByEdges(
  probs: ArrayLike<number>,
  labels: ArrayLike<number>,
  edges: readonly number[],
): ReliabilityBin[] {
  const n = edges.length - 1;
  return binStats(
    probs,
    labels,
    (b) => edges[b] as number,
    (b) => edges[b + 1] as number,
    n,
    (p) => {
      let b = 0;
      while (b < n - 1 && p >= (edges[b + 1] as number)) b++;
      return b;
    },
  );
}

/** Expected calibration error: the count-weighted mean |predicted - observed| over equal-width bins. */
export function ece(probs: ArrayLike<number>, labels: ArrayLike<number>, bins = 10): number {
  let s = 0;
  for (const b of reliability(probs, labels, bins)) s += b.count * Math.abs(b.meanPredicted - b.observedRate);
  return probs.length ? s / probs.length : Number.NaN;
}

/**
 * Expected calibration error over equal-mass bins (the "adaptive" ECE): rows sorted by probability, cut into
 * `bins` groups of (nearly) equal count, the count-weighted mean |predicted - observed| over them. Where
 * most rows sit below 0.1, equal-width bins put them all in one bin, inside which over- and under-predicted
 * rows cancel; equal-mass bins do not pool them, so both are reported.
 */
export function eceEqualMass(probs: ArrayLike<number>, labels: ArrayLike<number>, bins = 10): number {
  const n = probs.length;
  if (n === 0) return Number.NaN;
  const idx = order(probs).reverse();
  let s = 0;
  for (let b = 0; b < bins; b++) {
    const lo = Math.floor((b * n) / bins);
    const hi = Math.floor(((b + 1) * n) / bins);
    let sumP = 0;
    let sumY = 0;
    for (let j = lo; j < hi; j++) {
      const i = idx[j] as number;
      sumP += probs[i] as number;
      sumY += labels[i] as number;
    }
    s += Math.abs(sumP - sumY);
  }
  return s / n;
}

/** Share of positives caught when alerting on the top `rate` fraction of rows by score. */
export function recallAtAlertRate(
  scores: ArrayLike<number>,
  labels: ArrayLike<number>,
  rate: number,
): number {
  const pos = countPositives(labels);
  if (pos === 0) return Number.NaN;
  const k = Math.max(1, Math.round(scores.length * rate));
  const idx = order(scores);
  let tp = 0;
  for (let i = 0; i < k; i++) if (labels[idx[i] as number] === 1) tp++;
  return tp / pos;
}

/** The score at which the top `rate` fraction of rows alerts. */
export function thresholdAtAlertRate(scores: ArrayLike<number>, rate: number): number {
  const idx = order(scores);
  const k = Math.max(1, Math.round(scores.length * rate));
  return scores[idx[k - 1] as number] as number;
}

export interface CurvePoint {
  x: number;
  y: number;
}

/** ROC (x = false-positive rate, y = true-positive rate) and PR (x = recall, y = precision) curves, thinned. */
export function curves(scores: ArrayLike<number>, labels: ArrayLike<number>, maxPoints = 200) {
  const pos = countPositives(labels);
  const neg = scores.length - pos;
  const idx = order(scores);
  const roc: CurvePoint[] = [{ x: 0, y: 0 }];
  const pr: CurvePoint[] = [];
  let tp = 0;
  let fp = 0;
  const step = Math.max(1, Math.floor(idx.length / maxPoints));
  for (let i = 0; i < idx.length; i++) {
    if (labels[idx[i] as number] === 1) tp++;
    else fp++;
    if (i % step === step - 1 || i === idx.length - 1) {
      roc.push({ x: neg ? fp / neg : 0, y: pos ? tp / pos : 0 });
      pr.push({ x: pos ? tp / pos : 0, y: tp / (tp + fp) });
    }
  }
  return { roc, pr };
}

export function median(values: number[]): number {
  if (values.length === 0) return Number.NaN;
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}
