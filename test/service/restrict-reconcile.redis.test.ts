/**
 * Reconciliation of reduce-only restrictions after a restart, through the whole service against a real
 * Redis: the evaluator replays the log under the policy it starts with, and where the replay's restriction
 * differs from the stored record (the policy changed in between), the replay's state wins under a version
 * newer than the stored one: one `restrict` job (reason `reconciled`) with a deterministic id, the record
 * and the risk view updated, one audit entry, the venue told; a further restart under the same policy
 * changes nothing. Each scenario runs on its own prefix; execution queues other than `restrict` are paused
 * so no venue fill lands in the log between restarts.
 */
import { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RiskView } from '../../src/service/api/schemas.js';
import type { RestrictJob } from '../../src/service/queue/job.js';
import { startWorker, type WorkerHandle } from '../../src/service/runtime.js';
import { keyspace } from '../../src/service/state/keys.js';
import { type RestrictionRecord, RestrictionStore } from '../../src/service/state/restrictions.js';
import { SimulatedVenue } from '../../src/service/venue/simulated.js';
import { connect } from '../helpers/redis.js';
import { deposit, fill, instrument, mark, T0 } from './events-fixtures.js';
import { type Harness, makeHarness, silent } from './harness.js';
import { ALL_JOB_STATES, allAudit, evaluatedToTail } from './settle.js';
import { eventually } from './wait.js';

const MIN = 60_000; // ms
type Policy = Record<string, unknown>;
const FLAGGED: Policy = { reduceOnlyWhileFlagged: true, reduceOnlyHoldMs: 60 * MIN };
const UNRESTRICTED: Policy = { reduceOnlyWhileFlagged: false, reduceOnlyHoldMs: 60 * MIN };

const redis = connect();
afterAll(() => {
  redis.disconnect();
});

/** One deployment on a fresh prefix, restarted under whichever policy a step asks for. */
class Deployment {
  h!: Harness;
  venue = new SimulatedVenue();
  private worker: WorkerHandle | undefined;
  private queues: Queue[] = [];
  private restrictQ!: Queue;
  private records!: RestrictionStore;
  /** event time of the markers posted after restarts (kept increasing) */
  private markerTs = T0 + 30 * MIN;

  async open(label: string, policy: Policy): Promise<void> {
    this.h = await makeHarness(label, { env: { PREEMPT_POLICY: JSON.stringify(policy) } });
    const bull = keyspace(this.h.prefix).bull;
    this.queues = ['liquidate', 'deleverage', 'restrict'].map(
      (n) => new Queue(n, { connection: redis, prefix: bull }),
    );
    this.restrictQ = this.queues[2] as Queue;
    // REDUCE decisions would execute and log fills between restarts: only restrictions run
    await Promise.all(this.queues.slice(0, 2).map((q) => q.pause()));
    this.records = new RestrictionStore(redis, keyspace(this.h.prefix), 1);
    await this.start(policy);
  }

  private async start(policy: Policy): Promise<void> {
    this.worker = await startWorker(
      { ...this.h.config, PREEMPT_POLICY: policy },
      {
        log: silent,
        metrics: this.h.metrics,
        model: this.h.model,
        venue: this.venue,
        tuning: { blockMs: 100, lockDurationMs: 2000, stalledIntervalMs: 1000 },
      },
    );
  }

  /**
   * Stop the worker, start it under `policy`, and wait until it has rebuilt and reconciled: a marker
   * entry posted now is only read by the loop after the rebuild (and its reconciliation) is done.
   */
  async restart(policy: Policy): Promise<void> {
    await this.stop();
    await this.start(policy);
    this.markerTs += 1000;
    await this.post([deposit('bystander', 1, this.markerTs)]);
  }

  async stop(): Promise<void> {
    await this.worker?.close();
    this.worker = undefined;
  }

  async post(body: unknown[]): Promise<void> {
    const res = await this.h.call('POST', '/v1/events', { key: this.h.keys['events:write'], body });
    expect(res.status).toBe(200);
    await evaluatedToTail(redis, this.h.prefix, 1);
  }

  async risk(account: string): Promise<RiskView> {
    const res = await this.h.call('GET', `/v1/accounts/${account}/risk`, { key: this.h.keys['score:read'] });
    expect(res.status).toBe(200);
    return (await res.json()) as RiskView;
  }

  /** restrict jobs by id, with their payloads */
  async jobs(): Promise<Record<string, RestrictJob>> {
    const all = await this.restrictQ.getJobs([...ALL_JOB_STATES]);
    return Object.fromEntries(all.map((j) => [j.id as string, j.data as RestrictJob]));
  }

  record(account: string): Promise<RestrictionRecord | undefined> {
    return this.records.get(account);
  }

  /** job ids of the restriction audit entries, in order */
  async restrictionAudit(): Promise<string[]> {
    return (await allAudit(redis, this.h.prefix)).filter((e) => e.kind === 'restriction').map((e) => e.jobId);
  }

  /** the venue holds `account` at `version` with `reduceOnly` */
  async delivered(account: string, version: number, reduceOnly: boolean): Promise<void> {
    await eventually(
      () => this.venue.restrictions.get(account),
      (r) => r?.version === version,
      `the venue to apply version ${version} for ${account}`,
    );
    expect(this.venue.isReduceOnly(account)).toBe(reduceOnly);
  }

  async close(): Promise<void> {
    await this.worker?.close();
    await Promise.all(this.queues.map((q) => q.close()));
    await this.h?.close();
  }
}

/** `account` enters the reduce tier at the 88 mark (test model: pd from margin ratio; as in restrict.redis.test.ts) */
const flaggedHistory = (account: string) => [
  instrument(),
  mark(100, T0 + 1),
  deposit(account, 300, T0 + 2),
  fill(account, 'buy', 20, 100, T0 + 3),
  mark(95, T0 + MIN),
  mark(90, T0 + 2 * MIN),
  mark(88, T0 + 3 * MIN),
];
const FLAGGED_AT = T0 + 3 * MIN;

describe('a stored restriction the replay does not reproduce', () => {
  const d = new Deployment();
  beforeAll(() => d.open('svc-reconcile-stored', FLAGGED));
  afterAll(() => d.close());

  it('is restricted under the first policy', async () => {
    await d.post(flaggedHistory('risky'));
    const jobs = await d.jobs();
    expect(Object.keys(jobs)).toEqual(['restrict-risky-1']);
    expect(jobs['restrict-risky-1']).toMatchObject({
      reduceOnly: true,
      version: 1,
      reason: 'pd-reduce-tier',
    });
    expect(await d.record('risky')).toMatchObject({ reduceOnly: true, version: 1 });
    expect(await d.risk('risky')).toMatchObject({ reduceOnly: true });
    await d.delivered('risky', 1, true);
  });

  it('a restart under a policy that never restricts lifts it once, under the next version', async () => {
    await d.restart(UNRESTRICTED);
    const jobs = await d.jobs();
    expect(Object.keys(jobs).sort()).toEqual(['restrict-risky-1', 'restrict-risky-2']);
    expect(jobs['restrict-risky-2']).toEqual({
      kind: 'restrict',
      account: 'risky',
      reduceOnly: false,
      version: 2,
      epoch: 1,
      // the replay's clock: the last entry of the log before the restart
      decidedAt: FLAGGED_AT,
      reason: 'reconciled',
      pd: null,
      modelVersion: null,
    });
    expect(await d.record('risky')).toEqual({
      account: 'risky',
      reduceOnly: false,
      version: 2,
      since: FLAGGED_AT,
      until: null,
      reason: 'reconciled',
      jobId: 'restrict-risky-2',
    });
    expect(await d.restrictionAudit()).toEqual(['restrict-risky-1', 'restrict-risky-2']);
    expect(await d.risk('risky')).toMatchObject({ reduceOnly: false, reduceOnlyUntil: null });
    await d.delivered('risky', 2, false);
  });

  it('a second restart under the same policy changes nothing', async () => {
    const record = await d.record('risky');
    await d.restart(UNRESTRICTED);
    expect(Object.keys(await d.jobs()).sort()).toEqual(['restrict-risky-1', 'restrict-risky-2']);
    expect(await d.restrictionAudit()).toEqual(['restrict-risky-1', 'restrict-risky-2']);
    expect(await d.record('risky')).toEqual(record);
    expect(await d.risk('risky')).toMatchObject({ reduceOnly: false });
  });

  it('back under the first policy: restricted again, above the stored version', async () => {
    await d.restart(FLAGGED);
    const jobs = await d.jobs();
    expect(Object.keys(jobs).sort()).toEqual(['restrict-risky-1', 'restrict-risky-2', 'restrict-risky-3']);
    expect(jobs['restrict-risky-3']).toMatchObject({ reduceOnly: true, version: 3, reason: 'reconciled' });
    expect(await d.record('risky')).toMatchObject({ reduceOnly: true, version: 3, reason: 'reconciled' });
    expect(await d.restrictionAudit()).toEqual(['restrict-risky-1', 'restrict-risky-2', 'restrict-risky-3']);
    expect(await d.risk('risky')).toMatchObject({ reduceOnly: true });
    await d.delivered('risky', 3, true);

    // the replay's v1 adopts the stored v3 (same state): nothing enqueued, and the next change is v4
    await d.restart(FLAGGED);
    expect(Object.keys(await d.jobs()).length).toBe(3);
    expect((await d.restrictionAudit()).length).toBe(3);
    await d.post([mark(100, T0 + 40 * MIN)]);
    const after = await d.jobs();
    expect(Object.keys(after).length).toBe(4);
    expect(after['restrict-risky-4']).toMatchObject({
      reduceOnly: false,
      version: 4,
      reason: 'signal-cleared',
    });
    await d.delivered('risky', 4, false);
  });
});

describe('a restriction the stored records lack', () => {
  const d = new Deployment();
  beforeAll(() => d.open('svc-reconcile-missing', UNRESTRICTED));
  afterAll(() => d.close());

  it('flagged under a policy that never restricts: nothing to deliver', async () => {
    await d.post(flaggedHistory('risky'));
    expect(await d.jobs()).toEqual({});
    expect(await d.record('risky')).toBeUndefined();
    expect(await d.risk('risky')).toMatchObject({ reduceOnly: false });
  });

  it('a restart under a restricting policy delivers the replayed restriction once', async () => {
    await d.restart(FLAGGED);
    const jobs = await d.jobs();
    expect(Object.keys(jobs)).toEqual(['restrict-risky-1']);
    expect(jobs['restrict-risky-1']).toMatchObject({
      account: 'risky',
      reduceOnly: true,
      version: 1,
      decidedAt: FLAGGED_AT,
      reason: 'reconciled',
    });
    expect(await d.record('risky')).toMatchObject({
      reduceOnly: true,
      version: 1,
      reason: 'reconciled',
      jobId: 'restrict-risky-1',
    });
    expect(await d.restrictionAudit()).toEqual(['restrict-risky-1']);
    expect(await d.risk('risky')).toMatchObject({ reduceOnly: true });
    await d.delivered('risky', 1, true);

    await d.restart(FLAGGED);
    expect(Object.keys(await d.jobs())).toEqual(['restrict-risky-1']);
    expect(await d.restrictionAudit()).toEqual(['restrict-risky-1']);
  });
});

describe('a shorter hold: the replay lifts a flat account the stored record still holds', () => {
  const d = new Deployment();
  const flaggedAt = FLAGGED_AT + 30_000;
  const lastMark = T0 + 10 * MIN;
  beforeAll(() => d.open('svc-reconcile-hold', FLAGGED));
  afterAll(() => d.close());

  it('held under a one-hour hold', async () => {
    await d.post([
      ...flaggedHistory('flat'),
      mark(87, flaggedAt),
      fill('flat', 'sell', 20, 87, T0 + 4 * MIN),
      mark(100, lastMark),
    ]);
    expect(Object.keys(await d.jobs())).toEqual(['restrict-flat-1']);
    expect(await d.record('flat')).toMatchObject({ reduceOnly: true, version: 1 });
    expect(await d.risk('flat')).toMatchObject({
      reduceOnly: true,
      reduceOnlyUntil: flaggedAt + 60 * MIN,
      positions: [],
    });
    await d.delivered('flat', 1, true);
  });

  it('a restart under a two-minute hold delivers the lift the replay made', async () => {
    // the replay lifts `flat` at the last mark (hold elapsed, version 2) without effects: the record says v1 on
    await d.restart({ ...FLAGGED, reduceOnlyHoldMs: 2 * MIN });
    const jobs = await d.jobs();
    expect(Object.keys(jobs).sort()).toEqual(['restrict-flat-1', 'restrict-flat-2']);
    expect(jobs['restrict-flat-2']).toMatchObject({
      reduceOnly: false,
      version: 2,
      decidedAt: lastMark,
      reason: 'reconciled',
    });
    expect(await d.record('flat')).toMatchObject({
      reduceOnly: false,
      version: 2,
      until: null,
      reason: 'reconciled',
      jobId: 'restrict-flat-2',
    });
    expect(await d.restrictionAudit()).toEqual(['restrict-flat-1', 'restrict-flat-2']);
    expect(await d.risk('flat')).toMatchObject({ reduceOnly: false, reduceOnlyUntil: null });
    await d.delivered('flat', 2, false);

    await d.restart({ ...FLAGGED, reduceOnlyHoldMs: 2 * MIN });
    expect(Object.keys(await d.jobs()).length).toBe(2);
    expect(await d.restrictionAudit()).toEqual(['restrict-flat-1', 'restrict-flat-2']);
  });
});

describe('a changed policy replaying entries a dead evaluator left pending', () => {
  const d = new Deployment();
  // test model: pd about 0.37 at the 88 mark, about 0.74 at 87; a 0.5 tier arms only at 87
  const HIGHER: Policy = { ...FLAGGED, pdReduce: 0.5 };
  beforeAll(() => d.open('svc-reconcile-pending', FLAGGED));
  afterAll(() => d.close());

  it('four changes under the first policy, the last a lift', async () => {
    await d.post([
      ...flaggedHistory('risky'),
      mark(100, T0 + 4 * MIN),
      mark(87, T0 + 5 * MIN),
      mark(100, T0 + 6 * MIN),
    ]);
    const jobs = await d.jobs();
    expect(Object.keys(jobs).sort()).toEqual([
      'restrict-risky-1',
      'restrict-risky-2',
      'restrict-risky-3',
      'restrict-risky-4',
    ]);
    expect(jobs['restrict-risky-1']?.pd).toBeLessThan(0.5);
    expect(jobs['restrict-risky-3']?.pd).toBeGreaterThanOrEqual(0.5);
    expect(await d.record('risky')).toMatchObject({ reduceOnly: false, version: 4 });
    await d.delivered('risky', 4, false);
  });

  it('the replay re-makes an old version on a pending entry: the record does not go back, the restriction is delivered', async () => {
    // while the worker is down, an evaluator reads the 87 mark and dies before finishing it
    await d.stop();
    const res = await d.h.call('POST', '/v1/events', {
      key: d.h.keys['events:write'],
      body: [mark(87, T0 + 7 * MIN)],
    });
    expect(res.status).toBe(200);
    const ks = keyspace(d.h.prefix);
    await redis.xreadgroup('GROUP', ks.shardGroup(0), 'dead', 'COUNT', 10, 'STREAMS', ks.stream, '>');
    expect(((await redis.xpending(ks.stream, ks.shardGroup(0))) as [number])[0]).toBe(1);

    // under the 0.5 tier the replay restricts at 87 (v1), lifts at 100 (v2), and restricts again on the
    // pending entry (v3, with effects: its job id is the first policy's v3, enqueued long ago)
    await d.restart(HIGHER);
    expect(((await redis.xpending(ks.stream, ks.shardGroup(0))) as [number])[0]).toBe(0);
    const jobs = await d.jobs();
    expect(Object.keys(jobs).sort()).toEqual([
      'restrict-risky-1',
      'restrict-risky-2',
      'restrict-risky-3',
      'restrict-risky-4',
      'restrict-risky-5',
    ]);
    expect(jobs['restrict-risky-5']).toMatchObject({
      reduceOnly: true,
      version: 5,
      decidedAt: T0 + 7 * MIN,
      reason: 'reconciled',
    });
    expect(await d.record('risky')).toMatchObject({ reduceOnly: true, version: 5, reason: 'reconciled' });
    expect(await d.restrictionAudit()).toEqual([
      'restrict-risky-1',
      'restrict-risky-2',
      'restrict-risky-3',
      'restrict-risky-4',
      'restrict-risky-5',
    ]);
    expect(await d.risk('risky')).toMatchObject({ reduceOnly: true });
    await d.delivered('risky', 5, true);

    await d.restart(HIGHER);
    expect(Object.keys(await d.jobs()).length).toBe(5);
    expect((await d.restrictionAudit()).length).toBe(5);
  });
});
