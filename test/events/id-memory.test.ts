import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { GENERATION_IDS, IdMemory } from '../../src/events/id-memory.js';
import type { CanonicalEvent } from '../../src/events/schema.js';
import { EventGate } from '../../src/events/validate.js';
import { FeaturePipeline } from '../../src/features/pipeline.js';
import { resolvePolicyConfig } from '../../src/margin/index.js';
import { ShardState } from '../../src/service/evaluator/shard-state.js';
import { decodeSnapshot, encodeSnapshot, policyHash } from '../../src/service/evaluator/snapshot.js';
import { deposit, instrument, mark, T0 } from '../features/builders.js';

describe('IdMemory', () => {
  it('keeps ids past one generation, in generations of at most the given size', () => {
    const m = new IdMemory(Number.POSITIVE_INFINITY, 3);
    for (let i = 0; i < 10; i++) m.add(`e${i}`, i);
    expect(m.size).toBe(10);
    expect(m.generations).toBe(4);
    for (let i = 0; i < 10; i++) expect(m.has(`e${i}`)).toBe(true);
    expect(m.has('e10')).toBe(false);
  });

  it('without a window forgets nothing, however far event time moves', () => {
    const m = new IdMemory();
    m.add('old', 0);
    m.add('new', 365 * 86_400_000);
    expect(m.has('old')).toBe(true);
    expect(m.generations).toBe(1);
  });

  it('with a window remembers an id at least that long and forgets it within 1.5 windows, in any order', () => {
    const window = 1_000; // ms of event time
    // steps of event time, some back (events out of order, up to two windows late)
    const step = fc.oneof(
      fc.integer({ min: 0, max: 300 }),
      fc.integer({ min: -2_000, max: -1 }),
      fc.integer({ min: 1_000, max: 4_000 }),
    );
    for (const cap of [7, GENERATION_IDS])
      fc.assert(
        fc.property(fc.array(step, { minLength: 1, maxLength: 300 }), (steps) => {
          const m = new IdMemory(window, cap);
          // id, its event time, the newest event time when it arrived
          const added: [string, number, number][] = [];
          let ts = 0;
          let newest = 0;
          steps.forEach((dt, i) => {
            ts = newest + dt; // dt < 0: an event behind the newest
            newest = Math.max(newest, ts);
            m.add(`e${i}`, ts);
            added.push([`e${i}`, ts, newest]);
            for (const [id, t, arrivedAt] of added) {
              if (t >= newest - window) expect(m.has(id)).toBe(true);
              if (arrivedAt < newest - 1.5 * window) expect(m.has(id)).toBe(false);
            }
            // events out of order do not split generations: about three a window and a half
            if (cap === GENERATION_IDS) expect(m.generations).toBeLessThanOrEqual(3);
          });
        }),
        { seed: 7, numRuns: 200 },
      );
  });

  it('restores from its state to the same ids, generations and forgetting', () => {
    const a = new IdMemory(1_000, 4);
    for (let i = 0; i < 30; i++) a.add(`e${i}`, i * 97);
    return IdMemory.fromState(structuredClone(a.state()), { generationIds: 4 }).then((b) => {
      expect(b.state()).toEqual(a.state());
      for (let i = 30; i < 60; i++) {
        a.add(`e${i}`, i * 97);
        b.add(`e${i}`, i * 97);
      }
      expect(b.state()).toEqual(a.state());
      expect(b.has('e0')).toBe(a.has('e0'));
      expect(a.has('e0')).toBe(false);
    });
  });

  it('reads the first state format (ids only) as seen at the given event time', async () => {
    const m = await IdMemory.fromState(
      { ids: ['a', 'b', 'c'], windowMs: 1_000 },
      { legacyTs: 5_000, generationIds: 2 },
    );
    expect(m.generations).toBe(2);
    m.add('d', 6_000);
    expect(m.has('a')).toBe(true); // 1,000 ms after the time it was taken to be from: still remembered
    m.add('e', 6_001);
    expect(m.has('a')).toBe(false);
    expect(m.has('d')).toBe(true);
  });

  it('refuses a state whose generations do not add up, and bad parameters', async () => {
    const times = { generationStartTs: [0], generationNewestTs: [0] };
    await expect(IdMemory.fromState({ ids: ['a'], generationSizes: [2], ...times })).rejects.toThrow(
      /hold 2 ids/,
    );
    await expect(IdMemory.fromState({ ids: [], generationSizes: [0], ...times })).rejects.toThrow(
      /whole number/,
    );
    await expect(IdMemory.fromState({ ids: ['a', 'b'], generationSizes: [1, 1], ...times })).rejects.toThrow(
      /2 generations but 1 start/,
    );
    expect(() => new IdMemory(0)).toThrow(RangeError);
    expect(() => new IdMemory(10, GENERATION_IDS + 1)).toThrow(RangeError);
  });
});

describe('EventGate and the pipeline with an id window', () => {
  it('saves the ids as one list an older reader reads, and restores the window and generations', async () => {
    const g = new EventGate({ idWindowMs: 60_000 });
    g.checkParsed(instrument(T0));
    for (let i = 0; i < 6; i++) g.checkParsed({ ...deposit(T0 + i * 20_000, 'a', 1), id: `d${i}` });
    const s = g.state();
    // generations start every half window (d0-d1, d2-d3, d4-d5); the first one's newest (d1, T0 + 20 s) is
    // more than the window behind the newest event (T0 + 100 s): forgotten whole
    expect(s.seenIds).toEqual(['d2', 'd3', 'd4', 'd5']);
    expect(s.idMemory?.generationSizes).toEqual([2, 2]);
    expect(s.idMemory?.windowMs).toBe(60_000);
    const back = await EventGate.fromState(structuredClone(s));
    expect(back.state()).toEqual(s);
    expect(back.checkParsed({ ...deposit(T0 + 100_000, 'a', 1), id: 'd4' }).kind).toBe('duplicate');
    // the restoring process's window wins over the saved one
    const longer = await EventGate.fromState(structuredClone(s), undefined, { idWindowMs: 3_600_000 });
    expect(longer.state().idMemory?.windowMs).toBe(3_600_000);
  });

  it('a resend past the window is late, not applied twice; within it, a duplicate', () => {
    const p = new FeaturePipeline({ idWindowMs: 60_000 });
    p.apply(instrument(T0));
    p.apply(mark(T0, 100));
    const first = { ...deposit(T0 + 1_000, 'a', 1_000), id: 'dep-1' };
    expect(p.apply(first)).toBe('accepted');
    expect(p.apply(mark(T0 + 50_000, 100))).toBe('accepted');
    expect(p.apply(first)).toBe('duplicate');
    for (let k = 1; k <= 4; k++) p.apply({ ...mark(T0 + 50_000 + k * 30_000, 100), id: `m${k}` });
    expect(p.apply(first)).toBe('late');
    expect(p.stats.applied).toBe(8);
    expect(p.stats.duplicates).toBe(1);
    expect(p.stats.late).toBe(1);
    expect(p.book.snapshot('a')?.cash).toBe(1_000);
  });

  it('a shard refuses an account event whose id may have been forgotten (it cannot tell a resend), also after a restore under another window', async () => {
    const policy = resolvePolicyConfig({});
    const DAY = 86_400_000;
    const shard = new ShardState(0, 1, policy, { snapshots: true, idWindowMs: 7 * DAY });
    shard.apply(instrument(T0));
    shard.apply(mark(T0, 100));
    const dep = { ...deposit(T0 + 1_000, 'a', 1_000), id: 'dep-1' };
    expect(shard.apply(dep).kind).toBe('applied');
    // a day of another account's events with ids (what the id memory keeps), and marks (which it does not)
    const day = (d: number) => {
      shard.apply({ ...mark(T0 + d * DAY, 100), id: `m${d}` });
      shard.apply({ ...deposit(T0 + d * DAY, 'b', 1), id: `b${d}` });
    };
    for (let d = 1; d <= 6; d++) day(d);
    // behind the clock but remembered: recognised, not re-stamped and applied again
    expect(shard.apply(dep)).toMatchObject({ kind: 'refused', reason: 'duplicate' });
    expect(shard.pipeline.idsForgottenThroughTs).toBe(Number.NEGATIVE_INFINITY);
    for (let d = 7; d <= 12; d++) day(d);
    // the first generation (dep-1 to b3, started at T0 + 1 s) is forgotten: its newest event is b3's
    expect(shard.pipeline.idsForgottenThroughTs).toBe(T0 + 3 * DAY);
    const cash = () => shard.pipeline.book.snapshot('a')?.cash;
    // an account event would be re-stamped to the clock, so it is refused instead
    const again = shard.apply(dep);
    expect(again).toMatchObject({ kind: 'refused', reason: 'expired' });
    expect(again.kind === 'refused' && again.detail).toMatch(/cannot be told from a resend/);
    expect(cash()).toBe(1_000);
    // a new event without an id that late is still applied (re-stamped), as before; one with a new id
    // stamped after the forgotten ones too
    expect(shard.apply(deposit(T0 + 2_000, 'a', 5)).kind).toBe('applied');
    expect(shard.apply({ ...deposit(T0 + 3 * DAY + 1, 'a', 10), id: 'dep-2' })).toMatchObject({
      kind: 'applied',
      restamped: true,
    });
    expect(cash()).toBe(1_015);
    // the same after a snapshot and restores under a longer window, or none: what was forgotten stays so
    const { meta, data } = await encodeSnapshot(shard, {
      entry: '9-0',
      entriesRead: 9,
      modelVersion: null,
      policyHash: policyHash(policy),
    });
    for (const opts of [{ idWindowMs: 7 * DAY }, { idWindowMs: 30 * DAY }, {}]) {
      const back = await decodeSnapshot(meta, data, policy, {}, opts);
      expect(back.pipeline.idsForgottenThroughTs).toBe(T0 + 3 * DAY);
      expect(back.apply(dep)).toMatchObject({ kind: 'refused', reason: 'expired' });
      expect(back.apply({ ...deposit(T0 + 3 * DAY + 1, 'a', 10), id: 'dep-2' })).toMatchObject({
        kind: 'refused',
        reason: 'duplicate',
      });
      expect(back.pipeline.book.snapshot('a')?.cash).toBe(1_015);
    }
  });

  it('a shard never applies an id twice: random events, resends, late and future stamps, restores under other windows', async () => {
    const policy = resolvePolicyConfig({});
    type Op = { kind: 'dep' | 'mark' | 'resend' | 'restore'; dt: number; pick: number; window: number };
    const op = fc.record({
      kind: fc.constantFrom<Op['kind']>('dep', 'dep', 'mark', 'resend', 'resend', 'restore'),
      dt: fc.oneof(fc.integer({ min: -3_000, max: 3_000 }), fc.integer({ min: 0, max: 20_000 })),
      pick: fc.nat(),
      window: fc.constantFrom(500, 1_000, 5_000, 0),
    });
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 60 }), async (ops) => {
        let shard = new ShardState(0, 1, policy, { snapshots: true, idWindowMs: 1_000 });
        shard.apply(instrument(T0));
        shard.apply(mark(T0, 100));
        const sent: CanonicalEvent[] = [];
        const applied = new Map<string, number>();
        let ts = T0;
        let n = 0;
        for (const o of ops) {
          ts += o.dt;
          if (o.kind === 'restore') {
            const { meta, data } = await encodeSnapshot(shard, {
              entry: `${n}-0`,
              entriesRead: n,
              modelVersion: null,
              policyHash: policyHash(policy),
            });
            shard = await decodeSnapshot(meta, data, policy, {}, o.window ? { idWindowMs: o.window } : {});
            continue;
          }
          const ev: CanonicalEvent =
            o.kind === 'resend' && sent.length > 0
              ? (sent[o.pick % sent.length] as CanonicalEvent)
              : o.kind === 'mark'
                ? { ...mark(ts, 100), id: `m${n++}` }
                : { ...deposit(ts, 'a', 1), id: `d${n++}` };
          if (o.kind !== 'resend') sent.push(ev);
          if (shard.apply(ev).kind === 'applied') {
            const id = ev.id as string;
            applied.set(id, (applied.get(id) ?? 0) + 1);
            expect(applied.get(id)).toBe(1);
          }
        }
      }),
      { seed: 11, numRuns: 150 },
    );
  });

  it('a shard applies a late account event after one the margin core refused (it moved the released time, not the clock)', () => {
    const shard = new ShardState(0, 1, resolvePolicyConfig({}));
    shard.apply(instrument(T0));
    shard.apply(mark(T0, 100));
    // refused when applied (the margin core never saw the account), but released at T0 + 60 s
    expect(shard.apply({ type: 'bankruptcy', ts: T0 + 60_000, account: 'ghost', deficit: 10 })).toMatchObject(
      {
        kind: 'refused',
        reason: 'rejected',
      },
    );
    // before: refused as late (a deposit lost); now applied at the released time
    expect(shard.apply(deposit(T0 + 10, 'a', 50))).toMatchObject({ kind: 'applied', restamped: true });
    expect(shard.pipeline.book.snapshot('a')?.cash).toBe(50);
    // a late market event is still refused, and says why
    const late = shard.apply(mark(T0 + 20, 101));
    expect(late).toMatchObject({ kind: 'refused', reason: 'late' });
    expect(late.kind === 'refused' && late.detail).toMatch(/mark at \d+: ts: earlier than/);
  });

  it('with marketIdsAtFrontier keeps market ids only at the newest market time; an older resend is late', async () => {
    expect(() => new FeaturePipeline({ toleranceMs: 5, marketIdsAtFrontier: true })).toThrow(/in-order/);
    const p = new FeaturePipeline({ marketIdsAtFrontier: true, idWindowMs: 60_000 });
    p.apply(instrument(T0));
    const m1 = { ...mark(T0 + 1_000, 100), id: 'm1' };
    const m2 = { ...mark(T0 + 1_000, 101), id: 'm2' };
    expect(p.apply(m1)).toBe('accepted');
    expect(p.apply(m2)).toBe('accepted');
    expect(p.apply(m1)).toBe('duplicate'); // same time as the newest: remembered
    expect(p.apply({ ...deposit(T0 + 1_000, 'a', 10), id: 'd1' })).toBe('accepted');
    expect(p.apply({ ...mark(T0 + 2_000, 102), id: 'm3' })).toBe('accepted');
    // m1 is behind the newest market event now: its id is gone, and the stream refuses it as late
    expect(p.apply(m1)).toBe('late');
    expect(p.stats.applied).toBe(5);
    expect(p.stats.duplicates).toBe(1);
  });

  it('keeps only account ids in the id memory of a shard, and the market frontier in its state', async () => {
    const g = new EventGate({ idWindowMs: 60_000, marketIdsAtFrontier: true });
    g.checkParsed(instrument(T0));
    for (let i = 0; i < 5; i++) g.checkParsed({ ...mark(T0 + i, 100), id: `m${i}` });
    g.checkParsed({ ...mark(T0 + 4, 100), id: 'm4b' });
    g.checkParsed({ ...deposit(T0 + 4, 'a', 1), id: 'd1' });
    expect(g.idsRemembered).toBe(1);
    const s = g.state();
    expect(s.seenIds).toEqual(['d1']);
    expect(s.marketFrontier).toEqual({ ts: T0 + 4, ids: ['m4', 'm4b'] });
    const back = await EventGate.fromState(structuredClone(s), undefined, { marketIdsAtFrontier: true });
    expect(back.state()).toEqual(s);
    expect(back.checkParsed({ ...mark(T0 + 4, 100), id: 'm4b' }).kind).toBe('duplicate');
    expect(back.checkParsed({ ...deposit(T0 + 9, 'a', 1), id: 'd1' }).kind).toBe('duplicate');
  });

  it('with idsCheckedUpstream keeps no ids (the file reader refused the duplicates already)', () => {
    const p = new FeaturePipeline({ idsCheckedUpstream: true });
    p.apply(instrument(T0));
    p.apply(mark(T0, 100));
    const dep = { ...deposit(T0, 'a', 10), id: 'd1' };
    expect(p.apply(dep)).toBe('accepted');
    expect(p.apply(dep)).toBe('accepted');
    expect(p.book.snapshot('a')?.cash).toBe(20);
    expect(p.stats.duplicates).toBe(0);
  });

  it('restored from a state saved before the market frontier, checks market ids against the old memory until it forgets them', async () => {
    // the state an older shard saved: market ids in the id memory, no frontier
    const old = new EventGate({ idWindowMs: 60_000 });
    old.checkParsed(instrument(T0));
    old.checkParsed({ ...mark(T0 + 10, 100), id: 'm1' });
    const saved = old.state();
    expect(saved.marketFrontier).toBeUndefined();
    const g = await EventGate.fromState(structuredClone(saved), undefined, { marketIdsAtFrontier: true });
    // a resend at the newest time: the frontier never saw m1, the old memory did
    expect(g.checkParsed({ ...mark(T0 + 10, 100), id: 'm1' }).kind).toBe('duplicate');
    const again = await EventGate.fromState(structuredClone(g.state()), undefined, {
      marketIdsAtFrontier: true,
    });
    expect(again.state().legacyMarketThroughTs).toBe(T0 + 10);
    expect(again.checkParsed({ ...mark(T0 + 10, 100), id: 'm1' }).kind).toBe('duplicate');
    // once the memory has forgotten everything up to there, the old ids are no longer asked
    for (let k = 1; k <= 4; k++) again.checkParsed({ ...deposit(T0 + k * 40_000, 'a', 1), id: `d${k}` });
    expect(again.idsForgottenThroughTs).toBeGreaterThanOrEqual(T0 + 10);
    again.checkParsed({ ...mark(T0 + 200_000, 100), id: 'm2' });
    expect(again.state().legacyMarketThroughTs).toBeUndefined();
  });

  it('a late instrument does not declare its symbol: later events on it are invalid, not refused when applied with their ids used up', () => {
    const p = new FeaturePipeline();
    p.apply(instrument(T0));
    p.apply(mark(T0 + 10_000, 100));
    const late = { ...instrument(T0 + 5_000, 'ETH-PERP'), id: 'i-eth' };
    expect(p.apply(late)).toBe('late');
    const eth = { ...mark(T0 + 11_000, 50, 'ETH-PERP'), id: 'm-eth' };
    expect(p.apply(eth)).toBe('invalid');
    expect(p.stats.lastRefusal).toMatch(/undeclared instrument "ETH-PERP"/);
    // declared in order, the same events apply, ids and all
    expect(p.apply({ ...instrument(T0 + 11_000, 'ETH-PERP'), id: 'i-eth-2' })).toBe('accepted');
    expect(p.apply(eth)).toBe('accepted');
    expect(p.stats.rejected).toBe(0);
  });
});
