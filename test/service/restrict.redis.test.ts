/**
 * Reduce-only restrictions through the whole service against a real Redis: the evaluator enqueues one
 * `restrict` job per change (on when the reduce tier arms, off when the signal clears or, for an account
 * that went flat, when the hold lapses in event time), the risk view and the audit show it, a restart
 * (even one that re-reads the whole log with effects) enqueues nothing twice, and the workers deliver
 * each change once to the venue.
 */
import type { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WorkerHandle } from '../../src/service/runtime.js';
import { keyspace } from '../../src/service/state/keys.js';
import { RestrictionStore } from '../../src/service/state/restrictions.js';
import { SimulatedVenue } from '../../src/service/venue/simulated.js';
import { connect } from '../helpers/redis.js';
import { deposit, fill, instrument, mark, T0 } from './events-fixtures.js';
import type { Harness } from './harness.js';
import { type RestrictKit, restrictKit } from './restrict-kit.js';
import { allAudit, evaluatedToTail, type QueueHold } from './settle.js';
import { eventually } from './wait.js';

const MIN = 60_000; // ms
const HOLD = 2 * MIN; // reduceOnlyHoldMs under test

const redis = connect();
let h: Harness;
let hold: QueueHold;
let restrictQ: Queue;
const venue = new SimulatedVenue();
let worker: WorkerHandle | undefined;

const start = () => kit.startWorker(venue);

let kit: RestrictKit;
beforeAll(async () => {
  kit = await restrictKit(redis, 'svc-restrict', { reduceOnlyHoldMs: HOLD });
  ({ h, hold, restrictQ } = kit);
  worker = await start();
});
afterAll(async () => {
  await worker?.close();
  await kit.close();
  redis.disconnect();
});

const restrictionAudit = async () =>
  (await allAudit(redis, h.prefix)).filter((e) => e.kind === 'restriction').map((e) => e.jobId);

describe('reduce-only restrictions', () => {
  it('one job when the tier arms, none while it stays armed, a lift when the signal clears or the hold lapses', async () => {
    // risky and bounce: the same book, pd crosses the reduce tier at 88 (test model: pd from margin ratio)
    await kit.post([
      instrument(),
      mark(100, T0 + 1),
      deposit('risky', 300, T0 + 2),
      deposit('bounce', 300, T0 + 2),
      deposit('safe', 10_000, T0 + 2),
      fill('risky', 'buy', 20, 100, T0 + 3),
      fill('bounce', 'buy', 20, 100, T0 + 3),
      fill('safe', 'buy', 10, 100, T0 + 3),
      mark(95, T0 + MIN),
      mark(90, T0 + 2 * MIN),
    ]);
    expect(await kit.jobs()).toEqual({});
    expect(await kit.risk('risky')).toMatchObject({ reduceOnly: false, reduceOnlyUntil: null });

    await kit.post([mark(88, T0 + 3 * MIN)]);
    const on = await kit.jobs();
    expect(Object.keys(on).sort()).toEqual(['restrict-bounce-1', 'restrict-risky-1']);
    expect(on['restrict-risky-1']).toMatchObject({
      kind: 'restrict',
      account: 'risky',
      reduceOnly: true,
      version: 1,
      decidedAt: T0 + 3 * MIN,
      reason: 'pd-reduce-tier',
      pd: expect.any(Number),
    });
    expect(on['restrict-risky-1']?.pd).toBeGreaterThanOrEqual(0.2);
    expect(await kit.risk('risky')).toMatchObject({ reduceOnly: true, reduceOnlyUntil: null });
    expect(await kit.risk('safe')).toMatchObject({ reduceOnly: false });

    // still flagged: no new job; then risky closes its position (flat: no longer scored, held)
    const flaggedAt = T0 + 3 * MIN + 30_000;
    await kit.post([mark(87, flaggedAt), fill('risky', 'sell', 20, 87, T0 + 4 * MIN)]);
    expect(Object.keys(await kit.jobs()).length).toBe(2);
    expect(await kit.risk('risky')).toMatchObject({
      reduceOnly: true,
      reduceOnlyUntil: flaggedAt + HOLD,
      positions: [],
    });

    // the market recovers: bounce's signal clears (lifted at once); flat risky stays held until the hold lapses
    await kit.post([mark(100, flaggedAt + HOLD - 1)]);
    const mid = await kit.jobs();
    expect(Object.keys(mid).sort()).toEqual(['restrict-bounce-1', 'restrict-bounce-2', 'restrict-risky-1']);
    expect(mid['restrict-bounce-2']).toMatchObject({
      reduceOnly: false,
      version: 2,
      reason: 'signal-cleared',
    });
    expect(await kit.risk('bounce')).toMatchObject({ reduceOnly: false, reduceOnlyUntil: null });
    expect(await kit.risk('risky')).toMatchObject({ reduceOnly: true });

    await kit.post([mark(100, flaggedAt + HOLD)]);
    const after = await kit.jobs();
    expect(Object.keys(after).length).toBe(4);
    expect(after['restrict-risky-2']).toMatchObject({
      account: 'risky',
      reduceOnly: false,
      version: 2,
      decidedAt: flaggedAt + HOLD,
      reason: 'hold-elapsed',
      pd: null,
    });
    expect(await kit.risk('risky')).toMatchObject({ reduceOnly: false, reduceOnlyUntil: null });
    // a later mark changes nothing
    await kit.post([mark(101, flaggedAt + HOLD + MIN)]);
    expect(Object.keys(await kit.jobs()).length).toBe(4);

    // the audit lists each change once; the stored records hold the latest per account
    expect((await restrictionAudit()).sort()).toEqual([
      'restrict-bounce-1',
      'restrict-bounce-2',
      'restrict-risky-1',
      'restrict-risky-2',
    ]);
    const records = await new RestrictionStore(redis, keyspace(h.prefix), 1).all(0);
    expect(records.get('risky')).toMatchObject({ reduceOnly: false, version: 2, reason: 'hold-elapsed' });
    expect(records.get('bounce')).toMatchObject({ reduceOnly: false, version: 2 });
  });

  it('a restart, even one re-reading the whole log with effects, enqueues no change twice', async () => {
    const before = Object.keys(await kit.jobs()).sort();
    const views = await kit.risk('risky');
    await worker?.close();
    worker = await start();
    await evaluatedToTail(redis, h.prefix, 1);
    expect(Object.keys(await kit.jobs()).sort()).toEqual(before);

    // nothing committed: the evaluator re-reads every entry with effects, re-decides and re-enqueues with
    // the same job ids
    await worker.close();
    const ks = keyspace(h.prefix);
    await redis.xgroup('SETID', ks.stream, ks.shardGroup(0), '0');
    worker = await start();
    const tail = (await redis.xrevrange(ks.stream, '+', '-', 'COUNT', 1))[0]?.[0];
    await eventually(
      async () => {
        const groups = (await redis.xinfo('GROUPS', ks.stream)) as unknown[][];
        const g = groups.find((x) => x[1] === ks.shardGroup(0)) ?? [];
        return g[g.indexOf('last-delivered-id') + 1];
      },
      (committed) => committed === tail,
      'the re-read entries to be committed',
    );
    await evaluatedToTail(redis, h.prefix, 1);
    expect(Object.keys(await kit.jobs()).sort()).toEqual(before);
    expect((await restrictionAudit()).length).toBe(4);
    expect(await kit.risk('risky')).toMatchObject({ reduceOnly: views.reduceOnly, reduceOnlyUntil: null });
  });

  it('held queues released late: the superseded restrict jobs are skipped, the lifts delivered once', async () => {
    await hold.resume();
    await eventually(
      () => restrictQ.getJobCounts('completed'),
      (c) => c.completed === 4,
      'the four restriction jobs',
    );
    // by the time they ran, each account's newest change was its lift: the venue never restricts needlessly
    expect(venue.restrictionLog.map((m) => m.idempotencyKey).sort()).toEqual([
      'restrict-bounce-2',
      'restrict-risky-2',
    ]);
    expect(venue.isReduceOnly('risky')).toBe(false);
    expect(venue.restrictions.get('risky')?.version).toBe(2);
    const executions = (await allAudit(redis, h.prefix)).filter(
      (e) => e.kind === 'execution' && e.data.kind === 'restrict',
    );
    expect(executions.map((e) => `${e.jobId}:${e.data.skipped ? 'skipped' : 'applied'}`).sort()).toEqual([
      'restrict-bounce-1:skipped',
      'restrict-bounce-2:applied',
      'restrict-risky-1:skipped',
      'restrict-risky-2:applied',
    ]);
    const metrics = await (await h.call('GET', '/metrics', { key: null })).text();
    expect(metrics).toMatch(/preempt_restrictions_total\{state="on",outcome="superseded"\} 2/);
    expect(metrics).toMatch(/preempt_restrictions_total\{state="off",outcome="applied"\} 2/);
  });

  it('a restriction reaches the venue while the account is flagged', async () => {
    // a new account arms the tier at a lower mark, with the queues running
    await kit.post([deposit('late', 300, T0 + 20 * MIN), fill('late', 'buy', 20, 101, T0 + 20 * MIN + 1)]);
    await kit.post([mark(89, T0 + 21 * MIN)]);
    await eventually(
      async () => venue.isReduceOnly('late'),
      (on) => on,
      'the venue to restrict the flagged account',
    );
    expect(venue.restrictions.get('late')?.version).toBe(1);
    expect(venue.admits('late', 20, 'buy', 1)).toBe(false);
    expect(venue.admits('late', 20, 'sell', 5)).toBe(true);
    expect(await kit.risk('late')).toMatchObject({ reduceOnly: true, reduceOnlyUntil: null });
  });
});
