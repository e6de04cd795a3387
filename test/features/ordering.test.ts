import { describe, expect, it } from 'vitest';
import type { CanonicalEvent } from '../../src/events/schema.js';
import { FeaturePipeline, SnapshotTimeError } from '../../src/features/pipeline.js';
import { ReorderBuffer } from '../../src/features/reorder-buffer.js';
import { deposit, fill, instrument, MIN, mark, order, T0 } from './builders.js';
import { syntheticHistory } from './synthetic-history.js';

const history = syntheticHistory({ seed: 3, accounts: 10, minutes: 40 });
const END = T0 + 41 * MIN;

function bytes(p: FeaturePipeline, ts: number): Buffer {
  const m = p.snapshot(ts).matrix;
  return Buffer.from(m.buffer, m.byteOffset, m.byteLength);
}

describe('reorder buffer', () => {
  it('releases in ts order, ties in arrival order, and refuses what is older than released', () => {
    const out: string[] = [];
    const buf = new ReorderBuffer<{ ts: number; k: string }>(100);
    const push = (ts: number, k: string) => buf.push({ ts, k }, (e) => out.push(e.k));
    expect(push(1000, 'a')).toBe(true);
    expect(push(950, 'b')).toBe(true); // 50 ms behind: within tolerance
    expect(push(1000, 'c')).toBe(true); // tie with a: after a
    expect(out).toEqual([]);
    expect(push(1100, 'd')).toBe(true); // watermark 1000: releases b, a, c
    expect(out).toEqual(['b', 'a', 'c']);
    expect(push(999, 'late')).toBe(false);
    buf.drain((e) => out.push(e.k));
    expect(out).toEqual(['b', 'a', 'c', 'd']);
  });

  it('rejects a negative or non-finite tolerance', () => {
    expect(() => new ReorderBuffer(-1)).toThrow(RangeError);
    expect(() => new ReorderBuffer(Number.NaN)).toThrow(RangeError);
  });
});

describe('pipeline ordering and duplicates', () => {
  it('events shuffled within the tolerance give exactly the features of the ordered history', () => {
    const ordered = new FeaturePipeline();
    for (const ev of history) ordered.apply(ev);
    // swap neighbours with different ts up to 30 s apart (equal ts keep arrival order, so they stay)
    const shuffled = history.slice();
    for (let i = 1; i < shuffled.length; i += 2) {
      const a = shuffled[i - 1]!;
      const b = shuffled[i]!;
      if (b.ts > a.ts && b.ts - a.ts <= 30_000) {
        shuffled[i - 1] = b;
        shuffled[i] = a;
      }
    }
    expect(shuffled).not.toEqual(history);
    const tolerant = new FeaturePipeline({ toleranceMs: 30_000 });
    for (const ev of shuffled) expect(tolerant.apply(ev)).toBe('accepted');
    expect(tolerant.buffered).toBeGreaterThan(0);
    expect(bytes(tolerant, END)).toEqual(bytes(ordered, END));
    expect(tolerant.stats.late).toBe(0);
    expect(tolerant.stats.applied).toBe(history.length);
  });

  it('refuses and counts events later than the tolerance, changing nothing', () => {
    const p = new FeaturePipeline({ toleranceMs: 1_000 });
    for (const ev of [instrument(T0), mark(T0, 100), deposit(T0, 'a', 1000), mark(T0 + 5_000, 101)])
      p.apply(ev);
    const before = bytes(p, T0 + 5_000);
    expect(p.apply(fill(T0 + 1_000, 'a', 'buy', 1, 100))).toBe('late');
    expect(p.apply(order(T0 + 4_999, 'a', 'o'))).toBe('late'); // the snapshot released everything up to 5 000
    expect(p.stats.late).toBe(2);
    expect(bytes(p, T0 + 5_000)).toEqual(before);
  });

  it('ignores and counts a repeated id, even when its content differs', () => {
    const p = new FeaturePipeline();
    const events: CanonicalEvent[] = [
      { ...instrument(T0), id: 'i' },
      { ...mark(T0, 100), id: 'm1' },
      { ...deposit(T0, 'a', 1000), id: 'd1' },
      { ...fill(T0, 'a', 'buy', 2, 100), id: 'f1' },
    ];
    for (const ev of events) p.apply(ev);
    const once = bytes(p, T0);
    expect(p.apply({ ...fill(T0, 'a', 'buy', 2, 100), id: 'f1' })).toBe('duplicate');
    expect(p.apply({ ...deposit(T0, 'a', 5), id: 'd1' })).toBe('duplicate');
    expect(p.stats.duplicates).toBe(2);
    expect(bytes(p, T0)).toEqual(once);
    expect(p.book.snapshot('a')!.positions[0]!.qty).toBe(2);
  });

  it('refuses an event on an undeclared instrument and one the margin core rejects, changing nothing', () => {
    const p = new FeaturePipeline();
    for (const ev of [instrument(T0), mark(T0, 100), deposit(T0, 'a', 1000)]) p.apply(ev);
    const before = bytes(p, T0);
    expect(p.apply(mark(T0, 5, 'NOPE-PERP'))).toBe('invalid');
    expect(p.stats.invalid).toBe(1);
    // a bankruptcy for an account the margin core never saw is refused when applied
    p.apply({ type: 'bankruptcy', ts: T0, account: 'ghost', deficit: 10 });
    expect(p.stats.rejected).toBe(1);
    expect(p.stats.lastRefusal).toMatch(/UNKNOWN_ACCOUNT/);
    expect(p.accounts()).toEqual(['a']);
    expect(bytes(p, T0)).toEqual(before);
  });

  it('refuses a snapshot in the past with a clear error', () => {
    const p = new FeaturePipeline();
    for (const ev of [instrument(T0), mark(T0 + 10_000, 100)]) p.apply(ev);
    expect(() => p.snapshot(T0 + 5_000)).toThrow(SnapshotTimeError);
    expect(() => p.snapshot(T0 + 5_000)).toThrow(/already applied/);
  });
});
