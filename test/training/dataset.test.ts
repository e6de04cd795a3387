/**
 * The row storage of `buildHistoryRows`: snapshot times and account indices grow in fixed-size typed-array
 * chunks (a plain number[] aborts V8 past ~100M elements), joined at the end into exactly what a plain
 * array would have given, bit for bit, whatever the chunk size.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { F } from '../../src/features/schema.js';
import { buildHistoryRows, GrowableColumn } from '../../training/dataset.js';
import { writeSimHistory } from '../helpers/sim-history.js';
import { testTempDir } from '../helpers/temp-dir.js';

/** true if `a` and `b` hold the same bits (NaN and -0 included) */
function sameBits(a: ArrayLike<number>, b: ArrayLike<number>): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) return false;
  return true;
}

describe('GrowableColumn', () => {
  // chunk size 4: lengths below, at and across several chunk boundaries
  for (const n of [0, 1, 3, 4, 5, 8, 9, 17, 40]) {
    it(`Float64: ${n} values in chunks of 4 come back in order, bit for bit`, () => {
      const values = Array.from({ length: n }, (_, i) =>
        i % 7 === 3 ? -0 : i % 11 === 5 ? Number.NaN : 1_700_000_000_000 + i * 300_000 + i / 3,
      );
      const col = new GrowableColumn((k) => new Float64Array(k), 4);
      for (const v of values) col.push(v);
      expect(col.length).toBe(n);
      const out = col.concat();
      expect(out).toBeInstanceOf(Float64Array);
      expect(sameBits(out, Float64Array.from(values))).toBe(true);
    });
  }

  it('Uint32: values up to 2^32 - 1 across chunk boundaries, as Uint32Array.from gives them', () => {
    const values = Array.from({ length: 23 }, (_, i) => (i === 22 ? 2 ** 32 - 1 : i * 1_000_003));
    const col = new GrowableColumn((k) => new Uint32Array(k), 5);
    for (const v of values) col.push(v);
    const out = col.concat();
    expect(out).toBeInstanceOf(Uint32Array);
    expect(Array.from(out)).toEqual(Array.from(Uint32Array.from(values)));
  });

  it('pushing after a concat goes on where it left off', () => {
    const col = new GrowableColumn((k) => new Float64Array(k), 3);
    for (let i = 0; i < 7; i++) col.push(i);
    expect(Array.from(col.concat())).toEqual([0, 1, 2, 3, 4, 5, 6]);
    for (let i = 7; i < 10; i++) col.push(i);
    expect(Array.from(col.concat())).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });

  it('refuses a chunk size that is not a positive integer', () => {
    expect(() => new GrowableColumn((k) => new Float64Array(k), 0)).toThrow(/positive integer/);
    expect(() => new GrowableColumn((k) => new Float64Array(k), 2.5)).toThrow(/positive integer/);
  });
});

describe('buildHistoryRows', () => {
  it('with maxMarginRatio keeps exactly the rows below it, with the same features and labels', async () => {
    const dir = testTempDir('dataset-gate');
    const file = await writeSimHistory('flash-crash', 40, 5, join(dir, 'flash-crash.jsonl.gz'));
    const opts = { everyMs: 300_000, horizonMs: 3_600_000 };
    const all = await buildHistoryRows(file, opts);
    const below = await buildHistoryRows(file, { ...opts, maxMarginRatio: 3 });
    expect(all.excludedAboveMarginRatio).toBeUndefined();
    const mr = F.margin_ratio_log;
    const want: number[] = [];
    for (let i = 0; i < all.rows; i++) if ((all.x[i * all.cols + mr] as number) < Math.log(3)) want.push(i);
    expect(want.length).toBeGreaterThan(0);
    expect(want.length).toBeLessThan(all.rows);
    expect(below.rows).toBe(want.length);
    expect(below.excludedAboveMarginRatio).toBe(all.rows - want.length);
    expect(below.excludedInLiquidation).toBe(all.excludedInLiquidation);
    want.forEach((i, r) => {
      expect(below.ts[r]).toBe(all.ts[i]);
      expect(below.accounts[below.account[r] as number]).toBe(all.accounts[all.account[i] as number]);
      expect(below.y[r]).toBe(all.y[i]);
      expect(
        sameBits(
          below.x.subarray(r * below.cols, (r + 1) * below.cols),
          all.x.subarray(i * all.cols, (i + 1) * all.cols),
        ),
      ).toBe(true);
    });
  });

  it('gives the same rows, bit for bit, with chunks of 7 rows as in one chunk', async () => {
    const dir = testTempDir('dataset-chunks');
    const file = await writeSimHistory('flash-crash', 40, 5, join(dir, 'flash-crash.jsonl.gz'));
    const opts = { everyMs: 300_000, horizonMs: 3_600_000 };
    const whole = await buildHistoryRows(file, opts);
    const chunked = await buildHistoryRows(file, { ...opts, chunkRows: 7 });
    // several chunks of 7
    expect(whole.rows).toBeGreaterThan(3 * 7);
    expect(chunked.rows).toBe(whole.rows);
    expect(chunked.ts).toBeInstanceOf(Float64Array);
    expect(chunked.account).toBeInstanceOf(Uint32Array);
    expect(chunked.ts.length).toBe(whole.rows);
    expect(chunked.account.length).toBe(whole.rows);
    expect(sameBits(chunked.ts, whole.ts)).toBe(true);
    expect(sameBits(chunked.account, whole.account)).toBe(true);
    expect(sameBits(chunked.x, whole.x)).toBe(true);
    expect(sameBits(chunked.y, whole.y)).toBe(true);
    expect(chunked.accounts).toEqual(whole.accounts);
    // each row's time is a snapshot time, in order
    for (let i = 0; i < chunked.rows; i++) {
      expect((chunked.ts[i] as number) % opts.everyMs).toBe(0);
      if (i > 0) expect(chunked.ts[i]).toBeGreaterThanOrEqual(chunked.ts[i - 1] as number);
    }
  });
});
