import { describe, expect, it } from 'vitest';
import type { CanonicalEvent } from '../../src/events/schema.js';
import { FeaturePipeline, PipelineBusyError } from '../../src/features/pipeline.js';
import { F, FEATURE_COUNT } from '../../src/features/schema.js';
import { SnapshotPool } from '../../src/features/snapshot-pool.js';
import { MarginBook } from '../../src/margin/index.js';
import { DAY, HOUR, MIN, perDayNorm, perHourNorm, T0 } from './builders.js';
import { syntheticHistory } from './synthetic-history.js';

const history = syntheticHistory({ seed: 7, accounts: 25, minutes: 150 });
// checkpoints: on event instants, between ticks, and past the end
const checkpoints = [
  T0 + 17 * MIN + 3_000,
  T0 + 61 * MIN,
  T0 + 75 * MIN + 10_000,
  T0 + 149 * MIN + 1,
  T0 + 200 * MIN,
];

function prefix(ts: number): CanonicalEvent[] {
  return history.filter((e) => e.ts <= ts);
}

describe('streaming equals batch', () => {
  it('a snapshot taken while streaming equals a fresh pipeline fed the same prefix, bit for bit', () => {
    const streaming = new FeaturePipeline();
    let next = 0;
    for (const t of checkpoints) {
      while (next < history.length && history[next]!.ts <= t) streaming.apply(history[next++]!);
      const live = streaming.snapshot(t);
      const fresh = new FeaturePipeline();
      for (const ev of prefix(t)) fresh.apply(ev);
      const batch = fresh.snapshot(t);
      expect(live.accounts).toEqual(batch.accounts);
      expect(live.rows).toBeGreaterThan(0);
      expect(Buffer.from(live.matrix.buffer, live.matrix.byteOffset, live.matrix.byteLength)).toEqual(
        Buffer.from(batch.matrix.buffer, batch.matrix.byteOffset, batch.matrix.byteLength),
      );
      for (const v of live.matrix) expect(Number.isFinite(v)).toBe(true);
    }
    expect(streaming.stats.applied).toBe(history.length);
  });

  it('order-flow and margin features agree with a direct batch computation from the event list', () => {
    const t = T0 + 120 * MIN + 5_000;
    const events = prefix(t);
    const p = new FeaturePipeline();
    for (const ev of events) p.apply(ev);
    const snap = p.snapshot(t);
    const start = events[0]!.ts;
    const hNorm = perHourNorm(t - start);
    const dNorm = perDayNorm(t - start);
    const wH = (ts: number) => Math.exp(-(t - ts) / HOUR);
    const wD = (ts: number) => Math.exp(-(t - ts) / DAY);
    const book = new MarginBook();
    for (const ev of events) book.apply(ev);
    let checked = 0;
    snap.accounts.forEach((account, r) => {
      const mine = events.filter((e) => 'account' in e && e.account === account);
      const sum = (type: string, w: (ts: number) => number, val: (e: CanonicalEvent) => number = () => 1) =>
        mine.filter((e) => e.type === type).reduce((s, e) => s + w(e.ts) * val(e), 0);
      const usd = (e: CanonicalEvent) => (e.type === 'fill' ? e.qty * e.price : 0);
      const equity = book.snapshot(account)!.equity;
      const floor = Math.max(equity, 1);
      const got = (name: keyof typeof F) => snap.matrix[r * FEATURE_COUNT + F[name]]!;
      const close = (a: number, b: number) =>
        expect(Math.abs(a - b)).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(b)));
      close(got('order_rate_log1p'), Math.log1p(sum('order', wH) * hNorm));
      close(got('cancel_rate_log1p'), Math.log1p(sum('cancel', wH) * hNorm));
      close(got('fill_rate_log1p'), Math.log1p(sum('fill', wH) * hNorm));
      close(got('fill_notional_log1p'), Math.log1p(sum('fill', wH, usd) * hNorm));
      close(got('turnover_log1p'), Math.log1p((sum('fill', wH, usd) * hNorm) / floor));
      const amount = (e: CanonicalEvent) => (e.type === 'deposit' || e.type === 'withdrawal' ? e.amount : 0);
      close(got('deposit_log1p_d'), Math.log1p((sum('deposit', wD, amount) * dNorm) / floor));
      close(got('withdrawal_log1p_d'), Math.log1p((sum('withdrawal', wD, amount) * dNorm) / floor));
      close(got('liq_rate_log1p_d'), Math.log1p(sum('liquidation', wD) * dNorm));
      const fills = mine.filter((e) => e.type === 'fill');
      const lastFill = fills.at(-1);
      if (lastFill && t - lastFill.ts <= 3 * HOUR) {
        const taker = fills.filter((e) => e.type === 'fill' && e.liquidity === 'taker');
        close(got('taker_share'), taker.reduce((s, e) => s + wH(e.ts) * usd(e), 0) / sum('fill', wH, usd));
      } else expect(got('taker_share')).toBe(0.5);
      const deposits = mine.filter((e) => e.type === 'deposit');
      close(got('since_topup_h'), Math.min(24, (t - deposits.at(-1)!.ts) / HOUR));
      const liqs = mine.filter((e) => e.type === 'liquidation');
      close(got('liq_recency'), liqs.length ? Math.exp(-(t - liqs.at(-1)!.ts) / DAY) : 0);
      const m = book.snapshot(account)!;
      if (m.positions.length > 0) {
        close(
          got('margin_ratio_log'),
          Math.min(Math.log(1000), Math.max(Math.log(0.01), Math.log(m.marginRatio))),
        );
        close(got('leverage'), m.equity > 0 ? Math.min(200, m.notional / m.equity) : 200);
        checked++;
      } else expect(got('has_position')).toBe(0);
    });
    expect(checked).toBeGreaterThan(3);
    expect(history.some((e) => e.type === 'liquidation' && e.ts <= t)).toBe(true);
  });

  it('vector(account) and the positions-only snapshot are rows of the full snapshot', () => {
    const t = T0 + 90 * MIN;
    const p = new FeaturePipeline();
    for (const ev of prefix(t)) p.apply(ev);
    const full = p.snapshot(t);
    const held = p.snapshot(t, { onlyWithPosition: true });
    expect(held.rows).toBeGreaterThan(0);
    expect(held.rows).toBeLessThan(full.rows);
    // the same accounts, in the same order, without the features (and later, streaming on, still the same)
    expect(p.accountsWithPosition(t)).toEqual(held.accounts);
    const q = new FeaturePipeline();
    for (const ev of prefix(t)) q.apply(ev);
    const later = T0 + 150 * MIN;
    for (const ev of prefix(later)) if (ev.ts > t) q.apply(ev);
    const laterHeld = q.accountsWithPosition(later);
    expect(laterHeld).not.toEqual(held.accounts);
    expect(laterHeld).toEqual(q.snapshot(later, { onlyWithPosition: true }).accounts);
    held.accounts.forEach((a, r) => {
      const i = full.accounts.indexOf(a);
      const rowFull = full.matrix.subarray(i * FEATURE_COUNT, (i + 1) * FEATURE_COUNT);
      expect(Array.from(held.matrix.subarray(r * FEATURE_COUNT, (r + 1) * FEATURE_COUNT))).toEqual(
        Array.from(rowFull),
      );
      expect(rowFull[F.has_position]).toBe(1);
      expect(Array.from(p.vector(a, t))).toEqual(Array.from(rowFull));
    });
    // several accounts at once, in the order asked, an unknown one included
    const asked = [full.accounts[3]!, 'nobody', full.accounts[0]!];
    const many = p.vectors(asked, t);
    expect(Array.from(many.subarray(0, FEATURE_COUNT))).toEqual(Array.from(p.vector(asked[0]!, t)));
    expect(Array.from(many.subarray(FEATURE_COUNT, 2 * FEATURE_COUNT))).toEqual(
      Array.from(p.vector('nobody', t)),
    );
    expect(Array.from(many.subarray(2 * FEATURE_COUNT))).toEqual(Array.from(p.vector(asked[2]!, t)));
    for (const a of full.accounts)
      if (!held.accounts.includes(a))
        expect(full.matrix[full.accounts.indexOf(a) * FEATURE_COUNT + F.has_position]).toBe(0);
  });

  it('the parallel snapshot (worker threads on shared memory) equals the single-thread one, bit for bit', async () => {
    const t = T0 + 100 * MIN;
    const p = new FeaturePipeline();
    for (const ev of prefix(t)) p.apply(ev);
    const pool = await SnapshotPool.start(2);
    try {
      const single = p.snapshot(t);
      for (const onlyWithPosition of [false, true]) {
        const one = p.snapshot(t, { onlyWithPosition });
        const parallel = await p.snapshotParallel(t, pool, { onlyWithPosition });
        expect(parallel.matrix.buffer).toBeInstanceOf(SharedArrayBuffer);
        expect(parallel.accounts).toEqual(one.accounts);
        expect(Array.from(parallel.matrix)).toEqual(Array.from(one.matrix));
      }
      await expect(p.snapshotParallel(t, pool, { into: new Float32Array(10_000) })).rejects.toThrow(
        /SharedArrayBuffer/,
      );
      // while workers read the state: events wait, snapshots and vectors are refused
      const later = history.find((e) => e.ts > t)!;
      const inFlight = p.snapshotParallel(t, pool);
      const applied = p.stats.applied;
      expect(p.apply(later)).toBe('accepted');
      expect(p.stats.applied).toBe(applied);
      expect(() => p.vector(single.accounts[0]!, t)).toThrow(PipelineBusyError);
      await inFlight;
      expect(p.stats.applied).toBe(applied + 1);
    } finally {
      await pool.close();
    }
  });
});
