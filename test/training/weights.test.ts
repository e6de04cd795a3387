import { describe, expect, it } from 'vitest';
import { applyCalibration, fitIsotonic, fitPlatt } from '../../src/model/calibration.js';
import { fitStack } from '../../src/model/stack.js';
import { Rng } from '../../src/sim/random.js';
import { fitLogistic1d } from '../../training/baselines.js';
import type { HistoryRows } from '../../training/dataset.js';
import { gather, historyWeights, SPLIT_CODES, type SplitPlan } from '../../training/splits.js';

/**
 * Rows with integer weights, and the same rows repeated that many times: a weighted fit must equal the fit on
 * the repeated rows (the definition of a row weight in a log-loss or a least-squares pool).
 */
function weightedAndRepeated(rows: number, seed: number) {
  const rng = new Rng(seed, 'weights-test');
  const score = new Float32Array(rows);
  const dist = new Float32Array(rows);
  const label = new Float32Array(rows);
  const weight = new Float64Array(rows);
  for (let i = 0; i < rows; i++) {
    score[i] = 1 / (1 + Math.exp(-(rng.normal() * 1.5 - 2)));
    dist[i] = Math.exp(rng.normal());
    const z =
      0.9 * Math.log((score[i] as number) / (1 - (score[i] as number))) -
      Math.log(0.05 + (dist[i] as number)) -
      0.5;
    label[i] = rng.next() < 1 / (1 + Math.exp(-z)) ? 1 : 0;
    weight[i] = 1 + Math.floor(rng.next() * 4); // 1..4
  }
  const rScore: number[] = [];
  const rDist: number[] = [];
  const rLabel: number[] = [];
  for (let i = 0; i < rows; i++)
    for (let k = 0; k < (weight[i] as number); k++) {
      rScore.push(score[i] as number);
      rDist.push(dist[i] as number);
      rLabel.push(label[i] as number);
    }
  return {
    weighted: { score, dist, label, weight },
    repeated: {
      score: Float32Array.from(rScore),
      dist: Float32Array.from(rDist),
      label: Float32Array.from(rLabel),
    },
  };
}

describe('row weights in the calibration fits', () => {
  const { weighted: w, repeated: r } = weightedAndRepeated(4000, 21);

  it('Platt with integer weights equals Platt on the rows repeated', () => {
    const a = fitPlatt(w.score, w.label, 100, w.weight);
    const b = fitPlatt(r.score, r.label);
    if (a.method !== 'platt' || b.method !== 'platt') throw new Error('expected Platt');
    expect(a.a).toBeCloseTo(b.a, 6);
    expect(a.b).toBeCloseTo(b.b, 6);
    // and the weights matter: unweighted is another fit
    const c = fitPlatt(w.score, w.label);
    if (c.method !== 'platt') throw new Error('expected Platt');
    expect(Math.abs(c.b - b.b) + Math.abs(c.a - b.a)).toBeGreaterThan(1e-3);
  });

  it('isotonic with integer weights equals isotonic on the rows repeated', () => {
    const a = fitIsotonic(w.score, w.label, w.weight);
    const b = fitIsotonic(r.score, r.label);
    for (const s of [0.001, 0.01, 0.05, 0.1, 0.2, 0.4, 0.7])
      expect(applyCalibration(a, s)).toBeCloseTo(applyCalibration(b, s), 9);
  });

  it('isotonic ignores rows of weight 0', () => {
    const zeroed = Float64Array.from(w.weight, (v, i) => (i % 2 === 0 ? 0 : v));
    const a = fitIsotonic(w.score, w.label, zeroed);
    const odd = (xs: ArrayLike<number>) => Array.from(xs).filter((_, i) => i % 2 === 1);
    const b = fitIsotonic(odd(w.score), odd(w.label), odd(w.weight));
    for (const s of [0.001, 0.02, 0.1, 0.3])
      expect(applyCalibration(a, s)).toBeCloseTo(applyCalibration(b, s), 9);
  });

  it('the second stage with integer weights equals the stage on the rows repeated', () => {
    const names = ['dist'];
    const a = fitStack(w.score, w.dist, w.score.length, names, w.label, ['dist'], 0.05, 50, w.weight);
    const b = fitStack(r.score, r.dist, r.score.length, names, r.label, ['dist'], 0.05, 50);
    expect(a.wLogit).toBeCloseTo(b.wLogit, 5);
    expect(a.wFeatures[0]).toBeCloseTo(b.wFeatures[0] as number, 5);
    expect(a.bias).toBeCloseTo(b.bias, 5);
    expect(() =>
      fitStack(w.score, w.dist, w.score.length, names, w.label, ['dist'], 0.05, 50, [1, 2]),
    ).toThrow(/2 row weights for 4000 rows/);
  });

  it('the margin-rule baseline with integer weights equals the fit on the rows repeated', () => {
    const a = fitLogistic1d(w.dist, w.label, 'dist', w.weight);
    const b = fitLogistic1d(r.dist, r.label, 'dist');
    expect(a.a).toBeCloseTo(b.a, 6);
    expect(a.b).toBeCloseTo(b.b, 6);
  });
});

function history(file: string, rows: number): HistoryRows {
  return {
    file,
    rows,
    cols: 1,
    x: Float32Array.from({ length: rows }, (_, i) => i),
    y: new Float32Array(rows),
    ts: new Float64Array(rows),
    account: new Uint32Array(rows),
    accounts: ['a'],
    liquidations: new Map(),
    startTs: 0,
    endTs: 1,
    events: rows,
    excludedInLiquidation: 0,
  };
}

describe('history weights', () => {
  // a long calm history and two short crash days; every third row of each in the calibration split,
  // and the third history has none there
  const hs = [history('calm', 900), history('crash-a', 90), history('crash-b', 30), history('none', 60)];
  const plan: SplitPlan = {
    assign: hs.map((h, k) =>
      Uint8Array.from({ length: h.rows }, (_, i) =>
        k < 3 && i % 3 === 0 ? SPLIT_CODES.calibration : SPLIT_CODES.train,
      ),
    ),
    unseen: hs.map((h) => new Uint8Array(h.rows)),
    description: 'test plan',
  };

  it('give every history with rows in the split the same total weight, averaging 1, in gather order', () => {
    const m = gather(hs, plan, 'calibration');
    const wts = historyWeights(hs, plan, 'calibration');
    expect(wts.length).toBe(m.rows);
    expect(m.rows).toBe(300 + 30 + 10);
    const mean = wts.reduce((s, v) => s + v, 0) / wts.length;
    expect(mean).toBeCloseTo(1, 12);
    // rows 0..299 are calm's, then crash-a's 30, then crash-b's 10 (gather keeps history order)
    const total = (from: number, to: number) => wts.slice(from, to).reduce((s, v) => s + v, 0);
    expect(total(0, 300)).toBeCloseTo(m.rows / 3, 9);
    expect(total(300, 330)).toBeCloseTo(m.rows / 3, 9);
    expect(total(330, 340)).toBeCloseTo(m.rows / 3, 9);
    // and within a history every row weighs the same
    expect(new Set(wts.slice(0, 300)).size).toBe(1);
    expect(wts[0]).toBeLessThan(wts[339] as number);
  });

  it('of an empty split are empty', () => {
    expect(historyWeights(hs, plan, 'test').length).toBe(0);
  });
});
