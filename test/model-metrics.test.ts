import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { applyCalibration, compressIsotonic, fitIsotonic, fitPlatt } from '../src/model/calibration.js';
import {
  brier,
  ece,
  eceEqualMass,
  prAuc,
  recallAtAlertRate,
  reliability,
  reliabilityByEdges,
  rocAuc,
} from '../src/model/metrics.js';
import { Rng } from '../src/sim/random.js';

function bruteAuc(s: number[], y: number[]): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < s.length; i++)
    for (let j = 0; j < s.length; j++)
      if (y[i] === 1 && y[j] === 0) {
        den++;
        num += (s[i] as number) > (s[j] as number) ? 1 : s[i] === s[j] ? 0.5 : 0;
      }
  return num / den;
}

describe('metrics', () => {
  it('ROC-AUC equals the pairwise definition, ties included', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 5 }), fc.integer({ min: 0, max: 1 })), {
          minLength: 2,
          maxLength: 40,
        }),
        (pairs) => {
          const s = pairs.map((p) => p[0] / 5);
          const y = pairs.map((p) => p[1]);
          if (!y.includes(0) || !y.includes(1)) return;
          expect(rocAuc(s, y)).toBeCloseTo(bruteAuc(s, y), 10);
        },
      ),
    );
  });

  it('average precision on a hand-computed case', () => {
    // ranked: 1 (pos), 0.8 (neg), 0.6 (pos), 0.2 (neg): AP = (1/2)*1 + (1/2)*(2/3)
    expect(prAuc([1, 0.8, 0.6, 0.2], [1, 0, 1, 0])).toBeCloseTo(0.5 + 1 / 3, 12);
  });

  it('Brier, ECE and recall at an alert rate', () => {
    expect(brier([0.2, 0.9], [0, 1])).toBeCloseTo((0.04 + 0.01) / 2, 12);
    // all predictions 0.25 in one bin, observed rate 0.5: ECE 0.25
    expect(ece([0.25, 0.25, 0.25, 0.25], [1, 0, 1, 0])).toBeCloseTo(0.25, 12);
    const s = Array.from({ length: 100 }, (_, i) => i / 100);
    const y = s.map((v) => (v >= 0.95 ? 1 : 0));
    expect(recallAtAlertRate(s, y, 0.05)).toBe(1);
    expect(recallAtAlertRate(s, y, 0.01)).toBe(0.2);
  });

  it('equal-mass ECE does not let over- and under-predicted rows of one wide bin cancel', () => {
    // 100 rows predicted 1% of which 9 default, 100 predicted 9% of which 1 defaults: both fall in the
    // first tenth, where the mean prediction (5%) equals the observed rate (5%)
    const p = [...Array(100).fill(0.01), ...Array(100).fill(0.09)];
    const y = [...Array(9).fill(1), ...Array(91).fill(0), 1, ...Array(99).fill(0)];
    expect(ece(p, y)).toBeCloseTo(0, 12);
    // two equal-mass bins: |1 - 9| + |9 - 1| over 200 rows
    expect(eceEqualMass(p, y, 2)).toBeCloseTo(16 / 200, 12);
    expect(eceEqualMass(p, y, 10)).toBeGreaterThanOrEqual(16 / 200 - 1e-12);
    expect(eceEqualMass([], [])).toBeNaN();
  });

  it('reliability over given edges matches equal-width bins when the edges are equal-width, and takes 1 into the last band', () => {
    const rng = new Rng(7);
    const p = Array.from({ length: 2000 }, () => rng.next());
    const y = p.map((x) => (rng.next() < x ? 1 : 0));
    const edges = Array.from({ length: 11 }, (_, b) => b / 10);
    expect(reliabilityByEdges(p, y, edges)).toEqual(reliability(p, y, 10));
    const uneven = reliabilityByEdges([0, 0.004, 0.015, 1], [0, 1, 1, 1], [0, 0.01, 0.2, 1]);
    expect(uneven.map((b) => b.count)).toEqual([2, 1, 1]);
    expect(uneven[0]?.observedRate).toBe(0.5);
    expect(uneven[2]?.meanPredicted).toBe(1);
  });
});

describe('calibration', () => {
  // scores whose true default probability is sigmoid(2 * logit(s) - 1): miscalibrated in a known way
  const rng = new Rng(5, 'calibration');
  const n = 40_000;
  const scores = new Float32Array(n);
  const labels = new Float32Array(n);
  const truth = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const s = 0.02 + 0.96 * rng.next();
    const p = 1 / (1 + Math.exp(-(2 * Math.log(s / (1 - s)) - 1)));
    scores[i] = s;
    truth[i] = p;
    labels[i] = rng.next() < p ? 1 : 0;
  }

  it('Platt scaling recovers the known mapping, and calibrated pds match observed rates', () => {
    const cal = fitPlatt(scores, labels);
    expect(cal.method).toBe('platt');
    if (cal.method !== 'platt') return;
    expect(cal.a).toBeGreaterThan(1.85);
    expect(cal.a).toBeLessThan(2.15);
    expect(cal.b).toBeGreaterThan(-1.15);
    expect(cal.b).toBeLessThan(-0.85);
    const calibrated = scores.map((s) => applyCalibration(cal, s));
    expect(ece(scores, labels)).toBeGreaterThan(0.05);
    expect(ece(calibrated, labels)).toBeLessThan(0.02);
    expect(eceEqualMass(scores, labels)).toBeGreaterThan(0.05);
    expect(eceEqualMass(calibrated, labels)).toBeLessThan(0.02);
  });

  it('Platt scaling stays finite on saturated scores (a full Newton step from there diverges)', () => {
    // an over-confident network: most scores at 0 or 1 exactly, the labels only loosely agreeing
    const sat = Float32Array.from({ length: 4000 }, (_, i) =>
      i % 4 === 0 ? 1 : i % 4 === 1 ? 0 : (i % 97) / 97,
    );
    const lab = Float32Array.from({ length: 4000 }, (_, i) =>
      i % 4 === 0 ? (i % 3 === 0 ? 1 : 0) : i % 11 === 0 ? 1 : 0,
    );
    const cal = fitPlatt(sat, lab);
    expect(cal.method === 'platt' && Number.isFinite(cal.a) && Number.isFinite(cal.b)).toBe(true);
    if (cal.method !== 'platt') return;
    expect(Math.abs(cal.a)).toBeLessThan(10);
    // the calibrated scores of the saturated rows match their observed rates roughly
    const hi = applyCalibration(cal, 1);
    expect(hi).toBeGreaterThan(0.2);
    expect(hi).toBeLessThan(0.5);
  });

  it('isotonic calibration is monotone and close to the truth', () => {
    const cal = fitIsotonic(scores, labels);
    let prev = -1;
    let err = 0;
    for (let q = 0.05; q <= 0.95; q += 0.05) {
      const v = applyCalibration(cal, q);
      expect(v).toBeGreaterThanOrEqual(prev);
      prev = v;
    }
    for (let i = 0; i < 2000; i++)
      err += Math.abs(applyCalibration(cal, scores[i] as number) - (truth[i] as number));
    expect(err / 2000).toBeLessThan(0.04);
  });
});

describe('isotonic compression', () => {
  it('keeps the calibration function identical while dropping the inner knots of flat runs', () => {
    const raw = {
      method: 'isotonic' as const,
      x: [0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8],
      y: [0, 0, 0, 0, 0.25, 0.25, 0.25, 0.6, 1],
    };
    const small = compressIsotonic(raw);
    expect(small).toEqual({
      method: 'isotonic',
      x: [0.05, 0.3, 0.4, 0.6, 0.7, 0.8],
      y: [0, 0, 0.25, 0.25, 0.6, 1],
    });
    for (let q = 0; q <= 1; q += 0.001) expect(applyCalibration(small, q)).toBe(applyCalibration(raw, q));
  });

  it('a fit on many rows keeps few knots', () => {
    const rng = new Rng(9, 'iso');
    const s = Array.from({ length: 50_000 }, () => rng.next());
    const y = s.map((v) => (rng.next() < v * v * 0.1 ? 1 : 0));
    const cal = fitIsotonic(s, y);
    expect(cal.method === 'isotonic' && cal.x.length).toBeLessThan(1_000);
  });
});
