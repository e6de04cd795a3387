/**
 * The gathers that copy less than `gather`: `gatherSampled` (the sampled training split without the unsampled
 * copy) and `gatherColumns` (some columns and the labels only) give exactly what the full gather followed by
 * the sampling or the column selection gives.
 */
import { describe, expect, it } from 'vitest';
import { Rng } from '../../src/sim/random.js';
import type { HistoryRows } from '../../training/dataset.js';
import {
  gather,
  gatherColumns,
  gatherSampled,
  planSplits,
  SPLIT_CODES,
  type SplitMatrix,
  type SplitPlan,
  sampleNegatives,
  splitColumn,
} from '../../training/splits.js';

const COLS = 5;

/** `rows` rows over `accounts` accounts, about 3% of them defaults, every value distinct. */
function history(file: string, rows: number, accounts: number, seed: number): HistoryRows {
  const rng = new Rng(seed, 'splits-test');
  return {
    file,
    rows,
    cols: COLS,
    x: Float32Array.from({ length: rows * COLS }, () => rng.normal()),
    y: Float32Array.from({ length: rows }, () => (rng.next() < 0.03 ? 1 : 0)),
    ts: Float64Array.from({ length: rows }, (_, i) => 1_600_000_000_000 + i * 60_000),
    account: Uint32Array.from({ length: rows }, () => rng.int(accounts)),
    accounts: Array.from({ length: accounts }, (_, a) => `${file}-${a}`),
    liquidations: new Map(),
    startTs: 1_600_000_000_000,
    endTs: 1_600_000_000_000 + rows * 60_000,
    events: rows,
    excludedInLiquidation: 0,
  };
}

// four histories: the second has no rows at all, the third none in the training split (all calibration)
const hs = [
  history('a', 3000, 40, 1),
  history('empty', 0, 5, 2),
  history('calibration-only', 500, 10, 3),
  history('b', 1200, 25, 4),
];
const plan: SplitPlan = {
  assign: hs.map((h, k) => {
    const rng = new Rng(k, 'splits-test-plan');
    return Uint8Array.from({ length: h.rows }, () =>
      h.file === 'calibration-only'
        ? SPLIT_CODES.calibration
        : rng.next() < 0.7
          ? SPLIT_CODES.train
          : SPLIT_CODES.earlyStop,
    );
  }),
  unseen: hs.map((h) => Uint8Array.from({ length: h.rows }, (_, i) => i % 3)),
  description: 'test plan',
};

/** The bytes of a typed array (or of its view), to compare floats exactly. */
function bytes(a: Float32Array): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

function column(m: { x: Float32Array; rows: number; cols: number }, c: number): number[] {
  return Array.from({ length: m.rows }, (_, i) => m.x[i * m.cols + c] as number);
}

function expectSame(a: SplitMatrix, b: SplitMatrix) {
  expect(a.rows).toBe(b.rows);
  expect(a.cols).toBe(b.cols);
  expect(bytes(a.x).equals(bytes(b.x))).toBe(true);
  expect(Array.from(a.y)).toEqual(Array.from(b.y));
  expect(Array.from(a.ts)).toEqual(Array.from(b.ts));
  expect(Array.from(a.account)).toEqual(Array.from(b.account));
  expect(Array.from(a.unseen)).toEqual(Array.from(b.unseen));
}

describe('gatherSampled', () => {
  it('equals sampleNegatives(gather(...)): the same rows in the same order, for any share and seed', () => {
    for (const share of [0.05, 0.3, 0.77, 1])
      for (const seed of [1, 11, 12345]) {
        const expected = sampleNegatives(gather(hs, plan, 'train'), share, seed);
        const got = gatherSampled(hs, plan, 'train', share, seed);
        expectSame(got, expected);
        if (share < 1) expect(got.rows).toBeLessThan(gather(hs, plan, 'train').rows);
      }
    // a split only one history has rows in, and one none has
    expectSame(
      gatherSampled(hs, plan, 'calibration', 0.3, 7),
      sampleNegatives(gather(hs, plan, 'calibration'), 0.3, 7),
    );
    expectSame(gatherSampled(hs, plan, 'test', 0.3, 7), gather(hs, plan, 'test'));
    expect(gatherSampled(hs, plan, 'test', 0.3, 7).rows).toBe(0);
  });

  it('refuses a share outside (0, 1] as sampleNegatives does', () => {
    for (const share of [0, -0.1, 1.5, Number.NaN])
      expect(() => gatherSampled(hs, plan, 'train', share, 1)).toThrow(RangeError);
  });
});

describe('gatherColumns', () => {
  it('holds the columns asked for, in that order, and the labels of the gathered rows', () => {
    for (const split of ['train', 'earlyStop', 'calibration', 'test'] as const) {
      const full = gather(hs, plan, split);
      const cols = [3, 0, 3];
      const got = gatherColumns(hs, plan, split, cols);
      expect(got.rows).toBe(full.rows);
      expect(got.cols).toBe(cols.length);
      expect(Array.from(got.y)).toEqual(Array.from(full.y));
      for (const [j, c] of cols.entries()) expect(column(got, j)).toEqual(Array.from(splitColumn(full, c)));
    }
  });
});

describe('every history as a validation history', () => {
  it('gathers every row of every history, history after history, as test rows', () => {
    const all = gather(hs, planSplits([], hs, 3_600_000), 'test');
    expect(all.rows).toBe(hs.reduce((s, h) => s + h.rows, 0));
    let offset = 0;
    for (const h of hs) {
      expect(bytes(all.x.subarray(offset * COLS, (offset + h.rows) * COLS)).equals(bytes(h.x))).toBe(true);
      expect(Array.from(all.y.subarray(offset, offset + h.rows))).toEqual(Array.from(h.y));
      offset += h.rows;
    }
  });
});
