import { describe, expect, it } from 'vitest';
import { applyStackInPlace, featureIndices, fitStack } from '../../src/model/stack.js';
import { Rng } from '../../src/sim/random.js';
import { sampleNegatives } from '../../training/splits.js';

const NAMES = ['a', 'dist', 'b'];

/** Rows whose label is drawn from a known two-stage model: logit = 0.8 logit(s) - 1.5 ln(0.05 + dist) - 1. */
function synthetic(rows: number, seed: number) {
  const rng = new Rng(seed, 'stack-test');
  const raw = new Float32Array(rows);
  const x = new Float32Array(rows * NAMES.length);
  const y = new Float32Array(rows);
  for (let i = 0; i < rows; i++) {
    const s = 1 / (1 + Math.exp(-(rng.normal() * 1.5 - 3)));
    const dist = Math.exp(rng.normal() * 1.2);
    raw[i] = s;
    x[i * 3] = rng.normal();
    x[i * 3 + 1] = dist;
    x[i * 3 + 2] = rng.normal();
    const z = 0.8 * Math.log(s / (1 - s)) - 1.5 * Math.log(0.05 + dist) - 1;
    y[i] = rng.next() < 1 / (1 + Math.exp(-z)) ? 1 : 0;
  }
  return { raw, x, y };
}

describe('the second stage (network logit + margin-rule distance)', () => {
  it('recovers the weights that generated the labels', () => {
    const { raw, x, y } = synthetic(60_000, 3);
    const stack = fitStack(raw, x, 60_000, NAMES, y, ['dist'], 0.05);
    expect(stack.features).toEqual(['dist']);
    expect(stack.wLogit).toBeCloseTo(0.8, 1);
    expect(stack.wFeatures[0]).toBeCloseTo(-1.5, 1);
    expect(stack.bias).toBeCloseTo(-1, 0);
  });

  it('applies the fitted formula row by row, at any offset into the matrix', () => {
    const { raw, x } = synthetic(100, 4);
    const stack = { features: ['dist'], offset: 0.05, wLogit: 0.7, wFeatures: [-2], bias: 0.3 };
    const idx = featureIndices(NAMES, stack.features);
    const out = applyStackInPlace(stack, raw.slice(10, 20), x, 3, idx, 10);
    for (let k = 0; k < 10; k++) {
      const s = raw[10 + k] as number;
      const z = 0.3 + 0.7 * Math.log(s / (1 - s)) - 2 * Math.log(0.05 + (x[(10 + k) * 3 + 1] as number));
      expect(out[k]).toBeCloseTo(1 / (1 + Math.exp(-z)), 5);
    }
  });

  it('refuses a stacked feature the schema does not have', () => {
    expect(() => featureIndices(NAMES, ['liq_dist_sigma'])).toThrow(
      /liq_dist_sigma.*not in the model's feature schema/,
    );
  });
});

describe('negative sampling of the training split', () => {
  it('keeps every default and about the given share of the rest, deterministically', () => {
    const rows = 20_000;
    const rng = new Rng(9, 'neg');
    const m = {
      x: Float32Array.from({ length: rows * 2 }, (_, i) => i),
      y: Float32Array.from({ length: rows }, () => (rng.next() < 0.02 ? 1 : 0)),
      ts: Float64Array.from({ length: rows }, (_, i) => i * 1000),
      account: Uint32Array.from({ length: rows }, (_, i) => i % 50),
      unseen: new Uint8Array(rows),
      rows,
      cols: 2,
    };
    const positives = m.y.reduce((s, v) => s + v, 0);
    const a = sampleNegatives(m, 0.3, 1);
    const b = sampleNegatives(m, 0.3, 1);
    expect(a.y.reduce((s, v) => s + v, 0)).toBe(positives);
    expect(Array.from(a.ts)).toEqual(Array.from(b.ts));
    const keptNegatives = a.rows - positives;
    expect(keptNegatives / (rows - positives)).toBeGreaterThan(0.27);
    expect(keptNegatives / (rows - positives)).toBeLessThan(0.33);
    // rows travel whole: features, label and time stay together
    for (let r = 0; r < a.rows; r++) expect(a.x[r * 2]).toBe(((a.ts[r] as number) / 1000) * 2);
    expect(sampleNegatives(m, 1, 1)).toBe(m);
    expect(() => sampleNegatives(m, 0, 1)).toThrow(RangeError);
  });
});
