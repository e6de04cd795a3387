/**
 * BullMQ queues and execution workers against a real Redis: one execution per decision, invalid payloads
 * failed without retries and kept, transient errors retried with backoff, stalled jobs recovered,
 * producers failing fast and workers waiting when Redis is down.
 */
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type Job, Queue, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Outbox, type OutboxDeps } from '../../src/service/evaluator/outbox.js';
import { createMetrics, type ServiceMetrics } from '../../src/service/metrics.js';
import {
  type ExecutionJob,
  jobIdFor,
  NEEDS_OPERATOR,
  QUEUES,
  type RestrictJob,
} from '../../src/service/queue/job.js';
import { ActionProducer } from '../../src/service/queue/producer.js';
import {
  type ExecutionWorkers,
  makeProcessor,
  makeRestrictProcessor,
  startExecutionWorkers,
  type WorkerDeps,
} from '../../src/service/queue/worker.js';
import { type AuditEntry, AuditLog } from '../../src/service/state/audit.js';
import { type Keyspace, keyspace } from '../../src/service/state/keys.js';
import { createRedis } from '../../src/service/state/redis.js';
import { Reservations } from '../../src/service/state/reservations.js';
import { RestrictionStore } from '../../src/service/state/restrictions.js';
import { RiskStore } from '../../src/service/state/risk-store.js';
import { SimulatedVenue } from '../../src/service/venue/simulated.js';
import {
  type ExecutionRequest,
  type ExecutionResult,
  type ExecutionVenue,
  type RestrictionRequest,
  type RestrictionResult,
  VenueUnavailableError,
} from '../../src/service/venue/types.js';
import { WebhookVenue } from '../../src/service/venue/webhook.js';
import { connect, deletePrefix, freshPrefix, redisUrl } from '../helpers/redis.js';
import { silent } from './harness.js';
import { freePort, startRedisOn } from './private-redis.js';
import {
  auditTrail as kitAuditTrail,
  streamEvents as kitStreamEvents,
  sampleJob,
  workerDeps,
} from './queue-kit.js';
import { eventually } from './wait.js';

/** Counts executions per idempotency key; can fail the first `failures` calls transiently. */
class CountingVenue implements ExecutionVenue {
  readonly name = 'counting';
  readonly calls: string[] = [];
  private readonly inner = new SimulatedVenue();
  constructor(private failures = 0) {}
  async execute(req: ExecutionRequest): Promise<ExecutionResult> {
    this.calls.push(req.idempotencyKey);
    if (this.failures > 0) {
      this.failures--;
      throw new VenueUnavailableError('venue briefly down');
    }
    return this.inner.execute(req);
  }
  async setReduceOnly(req: RestrictionRequest): Promise<RestrictionResult> {
    this.calls.push(req.idempotencyKey);
    if (this.failures > 0) {
      this.failures--;
      throw new VenueUnavailableError('venue briefly down');
    }
    return this.inner.setReduceOnly(req);
  }
}

let prefix: string;
let keys: Keyspace;
let redis: Redis;
let conn: Redis;
let metrics: ServiceMetrics;
let running: ExecutionWorkers | undefined;
let producer: ActionProducer | undefined;
const admin = connect();

beforeEach(async () => {
  prefix = freshPrefix('svc-queue');
  keys = keyspace(prefix);
  redis = createRedis(redisUrl(), 'wait');
  conn = createRedis(redisUrl(), 'wait');
  await Promise.all([redis.connect(), conn.connect()]);
  metrics = createMetrics();
});
afterEach(async () => {
  await running?.close();
  await producer?.close();
  running = undefined;
  producer = undefined;
  redis.disconnect();
  conn.disconnect();
  await deletePrefix(admin, prefix);
});
afterAll(() => admin.disconnect());

function depsOf(venue: ExecutionVenue): WorkerDeps {
  return workerDeps({ conn, redis, keys, metrics }, venue);
}

function workers(
  venue: ExecutionVenue,
  extra: { lockDurationMs?: number; stalledIntervalMs?: number } = {},
): ExecutionWorkers {
  running = startExecutionWorkers({
    connection: conn,
    redis,
    keys,
    store: new RiskStore(redis, keys, 1, 0.01),
    restrictions: new RestrictionStore(redis, keys, 1),
    venue,
    audit: new AuditLog(redis, keys),
    metrics,
    log: silent,
    concurrency: 2,
    dedupTtlMs: 60_000,
    ...extra,
  });
  return running;
}

/**
 * Starts the workers and waits for the one job of `q` to fail: at its first attempt, as an invalid payload,
 * without the venue being called.
 */
async function expectRejectedAtOnce(q: Queue): Promise<void> {
  const venue = new CountingVenue();
  workers(venue);
  await eventually(
    () => q.getJobCounts('failed'),
    (c) => c.failed === 1,
    'the failure',
  );
  const [failed] = await q.getFailed();
  expect(failed?.attemptsMade).toBe(1);
  expect(failed?.failedReason).toMatch(/invalid job payload/);
  expect(venue.calls).toEqual([]);
}

/** A stored risk view of `account` at position version `epoch` (what an evaluator writes). */
function viewAt(account: string, epoch: number) {
  return {
    account,
    pd: 0.5,
    marginRatio: 2,
    equity: 1,
    mm: 1,
    im: 1,
    freeCollateral: 0,
    decision: 'WATCH' as const,
    reasons: [],
    reductions: [],
    positions: [],
    topFeatures: [],
    modelVersion: null,
    epoch,
    reduceOnly: false,
    reduceOnlyUntil: null,
    asOf: 1,
    evaluatedAt: 1,
  };
}

/** The audit trail, oldest first. */
const auditTrail = () => kitAuditTrail(redis, keys);
const streamEvents = () => kitStreamEvents(redis, keys);

/** What an evaluator's outbox writes through, on this test's Redis and keyspace. */
function outboxDeps(p: ActionProducer): OutboxDeps {
  return {
    redis,
    keys,
    store: new RiskStore(redis, keys, 1, 0.01),
    restrictions: new RestrictionStore(redis, keys, 1),
    producer: p,
    audit: new AuditLog(redis, keys),
    metrics,
  };
}

describe('execution queues', () => {
  it('a decision enqueued twice (even concurrently) executes once, and its fills come back as events', async () => {
    producer = new ActionProducer(redis, keys, { attempts: 3, backoffMs: 10 });
    const job = sampleJob('acct:1', 7);
    const results = await Promise.all([producer.enqueue(job), producer.enqueue(job)]);
    const again = await producer.enqueue(job);
    expect(results.every((r) => r.jobId === jobIdFor('deleverage', 'acct:1', 7))).toBe(true);
    expect(again.created).toBe(false);
    await redis.sadd(keys.instruments, 'BTC-PERP');
    const venue = new CountingVenue();
    workers(venue);
    const q = producer.queues.deleverage;
    await eventually(
      () => q.getJobCounts('completed'),
      (c) => c.completed === 1,
      'completion',
    );
    // a late re-enqueue of the completed decision is still de-duplicated
    expect((await producer.enqueue(job)).created).toBe(false);
    await new Promise((r) => setTimeout(r, 200));
    expect(venue.calls).toEqual([jobIdFor('deleverage', 'acct:1', 7)]);
    const events = await streamEvents();
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({
      type: 'fill',
      account: 'acct:1',
      side: 'sell',
      qty: 2,
      liquidity: 'taker',
    });
    const audit = await new AuditLog(redis, keys).list({ limit: 10 });
    expect(audit.items.map((e) => e.kind)).toEqual(['execution']);
    expect(audit.items[0]?.data).toMatchObject({ venue: 'simulated', notional: expect.any(Number) });
  });

  it('liquidations are recorded as liquidation events with the venue fee', async () => {
    producer = new ActionProducer(redis, keys, { attempts: 1, backoffMs: 10 });
    await redis.sadd(keys.instruments, 'BTC-PERP');
    await producer.enqueue(sampleJob('b', 1, { kind: 'liquidate' }));
    workers(new SimulatedVenue());
    const events = await eventually(streamEvents, (e) => e.length === 1, 'the liquidation event');
    const ev = events[0];
    expect(ev?.type).toBe('liquidation');
    if (ev?.type !== 'liquidation') return;
    expect(ev.fee).toBeCloseTo(ev.qty * ev.price * 0.005, 9);
    expect(ev.price).toBeLessThan(99.9); // sold below the bid: spread plus impact
  });

  it('jobs of one epoch together never close more than the position they saw (reduce-only)', async () => {
    producer = new ActionProducer(redis, keys, { attempts: 1, backoffMs: 10 });
    await redis.sadd(keys.instruments, 'BTC-PERP');
    const reduce = sampleJob('h', 4);
    reduce.orders = [{ symbol: 'BTC-PERP', side: 'sell', qty: 6, notional: 600, positionQty: 10 }];
    const liquidate = sampleJob('h', 4, { kind: 'liquidate' });
    liquidate.orders = [{ symbol: 'BTC-PERP', side: 'sell', qty: 10, notional: 1000, positionQty: 10 }];
    await producer.enqueue(reduce);
    await producer.enqueue(liquidate);
    workers(new SimulatedVenue());
    // whichever runs first takes its share; the other gets the rest (or nothing, and is skipped)
    const audit = await eventually(
      () => new AuditLog(redis, keys).list({ limit: 10 }),
      (a) => a.items.length === 2,
      'both jobs to finish',
    );
    expect(audit.items.map((e) => e.jobId).sort()).toEqual([
      jobIdFor('deleverage', 'h', 4),
      jobIdFor('liquidate', 'h', 4),
    ]);
    const events = await streamEvents();
    const sold = events.reduce((s, e) => s + (e && 'qty' in e ? e.qty : 0), 0);
    expect(sold).toBeCloseTo(10, 9);
    expect(events.some((e) => e?.type === 'liquidation')).toBe(true);
  });

  it("a job older than the account's current epoch is skipped as stale", async () => {
    producer = new ActionProducer(redis, keys, { attempts: 1, backoffMs: 10 });
    await new RiskStore(redis, keys, 1, 0.01).write(0, [viewAt('i', 9)]);
    await producer.enqueue(sampleJob('i', 8));
    const venue = new CountingVenue();
    workers(venue);
    const q = producer.queues.deleverage;
    await eventually(
      () => q.getJobCounts('completed'),
      (c) => c.completed === 1,
      'completion',
    );
    expect(venue.calls).toEqual([]);
    const job = await q.getJob(jobIdFor('deleverage', 'i', 8));
    expect(String(job?.returnvalue?.skipped)).toMatch(/stale/);
  });

  it('transient venue errors are retried with backoff until they succeed', async () => {
    producer = new ActionProducer(redis, keys, { attempts: 5, backoffMs: 5 });
    await redis.sadd(keys.instruments, 'BTC-PERP');
    await producer.enqueue(sampleJob('c', 3));
    const venue = new CountingVenue(2);
    workers(venue);
    const q = producer.queues.deleverage;
    await eventually(
      () => q.getJobCounts('completed'),
      (c) => c.completed === 1,
      'completion after retries',
    );
    const job = await q.getJob(jobIdFor('deleverage', 'c', 3));
    expect(job?.attemptsMade).toBe(3);
    expect(venue.calls.length).toBe(3);
    const failed = await metrics.jobsFailed.get();
    expect(failed.values.find((v) => v.labels.final === 'false')?.value).toBe(2);
  });

  it('an invalid payload fails at once (no retries), is kept, counted and audited', async () => {
    const q = new Queue(QUEUES.deleverage, { connection: redis, prefix: keys.bull });
    await q.add(
      'deleverage',
      { kind: 'deleverage', account: 'd', epoch: 1, orders: [] },
      { jobId: jobIdFor('deleverage', 'd', 1), attempts: 5 },
    );
    await expectRejectedAtOnce(q);
    const final = (await metrics.jobsFailed.get()).values.find((v) => v.labels.final === 'true');
    expect(final?.value).toBe(1);
    const audit = await eventually(
      () => new AuditLog(redis, keys).list({ limit: 10 }),
      (a) => a.items.length === 1,
      'the failure audit',
    );
    expect(audit.items[0]).toMatchObject({ kind: 'failure', account: 'd' });
    await q.close();
  });

  it('a job whose worker died mid-execution is recovered by another worker', async () => {
    producer = new ActionProducer(redis, keys, { attempts: 3, backoffMs: 10 });
    await redis.sadd(keys.instruments, 'BTC-PERP');
    await producer.enqueue(sampleJob('e', 5));
    // worker A takes the job and never finishes it (as if its process had died: its lock is not renewed)
    const stuckConn = createRedis(redisUrl(), 'wait');
    let taken = false;
    const a = new Worker(
      QUEUES.deleverage,
      async () => {
        taken = true;
        await new Promise(() => {});
      },
      { connection: stuckConn, prefix: keys.bull, lockDuration: 600, stalledInterval: 300 },
    );
    await eventually(
      () => taken,
      (t) => t,
      'worker A to take the job',
    );
    // simulate the crash: stop A's lock renewal by disconnecting it without completing the job
    stuckConn.disconnect();
    void a.close(true).catch(() => {});
    const venue = new CountingVenue();
    workers(venue, { lockDurationMs: 600, stalledIntervalMs: 300 });
    const q = producer.queues.deleverage;
    await eventually(
      () => q.getJobCounts('completed'),
      (c) => c.completed === 1,
      'recovery of the stalled job',
    );
    expect(venue.calls).toEqual([jobIdFor('deleverage', 'e', 5)]);
  });

  it('a job that loses its lock and finishes elsewhere leaves no entry behind in the worker that took it', async () => {
    producer = new ActionProducer(redis, keys, { attempts: 3, backoffMs: 10 });
    await redis.sadd(keys.instruments, 'BTC-PERP');
    const id = jobIdFor('deleverage', 'lost', 1);
    // the venue holds the request until released
    let release: () => void = () => {};
    const held = new Promise<void>((r) => {
      release = r;
    });
    let taken = false;
    const inner = new SimulatedVenue();
    const venue: ExecutionVenue = {
      name: 'held',
      async execute(req) {
        taken = true;
        await held;
        return inner.execute(req);
      },
      setReduceOnly: (req) => inner.setReduceOnly(req),
    };
    const w = workers(venue);
    const errors: string[] = [];
    w.workers.deleverage.on('error', (e) => errors.push(e.message));
    await producer.enqueue(sampleJob('lost', 1));
    await eventually(
      () => taken,
      (t) => t,
      'the worker to take the job',
    );
    expect(w.timedJobs()).toEqual({ liquidate: 0, deleverage: 1, restrict: 0 });
    // its lock is another worker's now (as after a stall): this worker can neither complete nor fail it
    await redis.set(`${keys.bull}:${QUEUES.deleverage}:${id}:lock`, 'another-worker');
    release();
    await eventually(
      () => errors,
      (e) => e.some((m) => /lock/i.test(m)),
      'the worker to find its lock gone',
    );
    expect(await producer.queues.deleverage.getJobCounts('completed', 'failed')).toMatchObject({
      completed: 0,
      failed: 0,
    });
    await eventually(
      () => w.timedJobs().deleverage,
      (n) => n === 0,
      "the worker to drop the job's entry",
    );
  });

  it('a restriction change enqueued repeatedly is applied once; an older version after a newer one is skipped', async () => {
    producer = new ActionProducer(redis, keys, { attempts: 3, backoffMs: 10 });
    const change = (version: number): RestrictJob => ({
      kind: 'restrict',
      account: 'r:1',
      reduceOnly: version % 2 === 1,
      version,
      epoch: 2,
      decidedAt: 1_700_000_000_000 + version,
      reason: version % 2 === 1 ? 'pd-reduce-tier' : 'signal-cleared',
      pd: version % 2 === 1 ? 0.3 : 0.01,
      modelVersion: 'test@1',
    });
    const twice = await Promise.all([producer.enqueue(change(1)), producer.enqueue(change(1))]);
    expect(twice.map((r) => r.jobId)).toEqual(['restrict-r%3A1-1', 'restrict-r%3A1-1']);
    expect((await producer.enqueue(change(1))).created).toBe(false);
    const venue = new SimulatedVenue();
    workers(venue);
    const q = producer.queues.restrict;
    await eventually(
      () => q.getJobCounts('completed'),
      (c) => c.completed === 1,
      'the restriction',
    );
    expect(venue.isReduceOnly('r:1')).toBe(true);
    expect(venue.restrictionLog.map((m) => m.idempotencyKey)).toEqual(['restrict-r%3A1-1']);
    // the lift (v2) runs; a stale copy of v1 arriving after it is skipped, never re-restricting
    await producer.enqueue(change(2));
    await eventually(
      () => q.getJobCounts('completed'),
      (c) => c.completed === 2,
      'the lift',
    );
    expect(venue.isReduceOnly('r:1')).toBe(false);
    expect(await new RestrictionStore(redis, keys, 1).applied('r:1')).toBe(2);
    // (BullMQ keeps the completed v1's id, so a re-enqueue is a no-op; a v1 still running somewhere else
    // when v2 was applied is what the processor's check is for)
    const late = await makeRestrictProcessor(depsOf(venue))({
      id: 'restrict-r%3A1-1',
      data: change(1),
      attemptsMade: 0,
    } as unknown as Job);
    expect(late).toMatchObject({ applied: false, skipped: expect.stringMatching(/superseded/) });
    expect(venue.isReduceOnly('r:1')).toBe(false);
    const applied = (await metrics.restrictions.get()).values;
    expect(applied.find((v) => v.labels.state === 'on' && v.labels.outcome === 'applied')?.value).toBe(1);
    expect(applied.find((v) => v.labels.state === 'off' && v.labels.outcome === 'applied')?.value).toBe(1);
    const execs = (await new AuditLog(redis, keys).list({ limit: 10 })).items.filter(
      (e) => e.kind === 'execution',
    );
    expect(execs.filter((e) => !e.data.skipped).map((e) => e.data.version)).toEqual([2, 1]); // newest first
    expect(execs.filter((e) => e.data.skipped).map((e) => e.data.version)).toEqual([1]);
  });

  it('a restriction job older than the latest stored change is skipped as superseded', async () => {
    producer = new ActionProducer(redis, keys, { attempts: 3, backoffMs: 10 });
    await new RestrictionStore(redis, keys, 1).write(0, [
      {
        account: 's',
        reduceOnly: true,
        version: 3,
        since: 3,
        until: null,
        reason: 'pd-reduce-tier',
        jobId: jobIdFor('restrict', 's', 3),
      },
    ]);
    await producer.enqueue({
      kind: 'restrict',
      account: 's',
      reduceOnly: false,
      version: 2,
      epoch: 1,
      decidedAt: 2,
      reason: 'signal-cleared',
      pd: null,
      modelVersion: null,
    });
    const venue = new SimulatedVenue();
    workers(venue);
    const q = producer.queues.restrict;
    await eventually(
      () => q.getJobCounts('completed'),
      (c) => c.completed === 1,
      'the skip',
    );
    const job = await q.getJob(jobIdFor('restrict', 's', 2));
    expect(job?.returnvalue).toMatchObject({ skipped: expect.stringMatching(/superseded/), applied: false });
    expect(venue.restrictionLog).toEqual([]);
  });

  it('an invalid restriction payload fails at once with UnrecoverableError, without retries', async () => {
    const q = new Queue(QUEUES.restrict, { connection: redis, prefix: keys.bull });
    // version 2 lifts: reduceOnly true contradicts it; epoch and reason are missing
    await q.add(
      'restrict',
      { kind: 'restrict', account: 'bad', reduceOnly: true, version: 2 },
      { jobId: jobIdFor('restrict', 'bad', 2), attempts: 5 },
    );
    await expectRejectedAtOnce(q);
    const final = (await metrics.jobsFailed.get()).values.find(
      (v) => v.labels.queue === 'restrict' && v.labels.final === 'true',
    );
    expect(final?.value).toBe(1);
    await q.close();
  });
});

/** A job as a BullMQ worker hands it to the processor (for driving the processor directly). */
function jobOf(data: ExecutionJob, attemptsMade = 0): Job {
  return { id: jobIdFor(data.kind, data.account, data.epoch), data, attemptsMade } as unknown as Job;
}

/** Makes the next audit writes fail (a real Redis error: the audit key holds a string, not a stream). */
const breakAudit = () => redis.set(keys.audit, 'not a stream');
const repairAudit = () => redis.del(keys.audit);

describe('execution failures and recovery', () => {
  it('a liquidation whose attempts ran out runs again, under its job id, when it is decided again; a completed one is left alone', async () => {
    producer = new ActionProducer(redis, keys, { attempts: 2, backoffMs: 5 });
    await redis.sadd(keys.instruments, 'BTC-PERP');
    const venue = new CountingVenue(2); // down for both attempts
    workers(venue);
    const deps = outboxDeps(producer);
    const progress = { shard: 0, group: 'g', consumer: 'c', lastEntryId: '0-0', clock: 0 };
    const outbox = new Outbox();
    const job = sampleJob('doomed', 1, { kind: 'liquidate' });
    const id = jobIdFor('liquidate', 'doomed', 1);
    const q = producer.queues.liquidate;
    outbox.jobs.push(job);
    await outbox.flush(deps, progress);
    await eventually(
      () => q.getJobCounts('failed'),
      (c) => c.failed === 1,
      'the liquidation to fail for good',
    );
    expect(venue.calls).toEqual([id, id]);
    await eventually(auditTrail, (a) => a.some((e) => e.kind === 'failure'), 'the failure audit');
    // the venue is back; the next mark decides LIQUIDATE at the same epoch again
    outbox.jobs.push(job);
    await outbox.flush(deps, progress);
    await eventually(
      () => q.getJobCounts('completed', 'failed'),
      (c) => c.completed === 1 && c.failed === 0,
      'the retried liquidation to complete',
    );
    // nothing executed under the job id: the run on the new decision sends a fresh request under a new key
    expect(venue.calls).toEqual([id, id, `${id}#g1`]);
    const events = await streamEvents();
    expect(events.map((e) => e?.type)).toEqual(['liquidation']);
    const retried = (await metrics.jobsRetried.get()).values;
    expect(retried.find((v) => v.labels.queue === 'liquidate')?.value).toBe(1);
    // a decision made again once the job completed changes nothing
    outbox.jobs.push(job);
    await outbox.flush(deps, progress);
    expect((await metrics.jobsRetried.get()).values[0]?.value).toBe(1);
    const trail = await eventually(
      auditTrail,
      (a) => a.some((e) => e.kind === 'execution'),
      'the execution audit',
    );
    expect(trail.map((e) => e.kind)).toEqual(['decision', 'failure', 'decision', 'execution']);
    expect(trail[1]?.data).toMatchObject({ reservation: 'released', retired: { key: id, next: `${id}#g1` } });
    expect(trail[2]?.data).toMatchObject({ retry: { attempts: 2, reason: 'venue briefly down' } });
    expect(trail[3]?.data).toMatchObject({ fills: [{ qty: 2 }] });
    expect(venue.calls).toHaveLength(3);
  });

  /**
   * A venue that executes every key (fills at 88, at the request's decidedAt) but answers the reduction of
   * 12 of a 20-contract position with `answerReduction`: the reduction is retried under its key until it
   * fails for good, then a liquidation of the same epoch is sent. Checks what every such run must show (the
   * same key twice, the 12 still reserved: the liquidation sells only 8, three failure audits) and returns
   * the failure audits.
   */
  async function reductionWithoutUsableAnswer(
    answerReduction: (res: ServerResponse) => void,
    timeoutMs: number,
  ): Promise<AuditEntry[]> {
    const received: { key: string; orders: { side: string; qty: number }[] }[] = [];
    const server = createServer((req, res) => {
      let raw = '';
      req.on('data', (c) => {
        raw += c;
      });
      req.on('end', () => {
        const body = JSON.parse(raw) as { idempotencyKey: string; decidedAt: number; orders: [] };
        received.push({ key: body.idempotencyKey, orders: body.orders });
        if (body.idempotencyKey.startsWith('deleverage')) return answerReduction(res);
        const fills = (body.orders as { symbol: string; side: string; qty: number }[]).map((o) => ({
          ...o,
          price: 88,
          fee: 1,
          ts: body.decidedAt,
        }));
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ fills }));
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
      producer = new ActionProducer(redis, keys, { attempts: 2, backoffMs: 5 });
      await redis.sadd(keys.instruments, 'BTC-PERP');
      workers(new WebhookVenue({ url, secret: 'x'.repeat(16), timeoutMs }));
      const reduce = sampleJob('acct', 1);
      reduce.orders = [{ symbol: 'BTC-PERP', side: 'sell', qty: 12, notional: 1080, positionQty: 20 }];
      await producer.enqueue(reduce);
      await eventually(
        () => producer?.queues.deleverage.getJobCounts('failed'),
        (c) => c?.failed === 1,
        'the reduction to fail for good',
      );
      // retried (the venue answers the same execution), not refused at the first answer
      expect(received.map((r) => r.key)).toEqual(['deleverage-acct-1', 'deleverage-acct-1']);
      // the 12 stay reserved: a liquidation of the same epoch closes only the other 8
      const liquidate = sampleJob('acct', 1, { kind: 'liquidate' });
      liquidate.orders = [{ symbol: 'BTC-PERP', side: 'sell', qty: 20, notional: 1800, positionQty: 20 }];
      await producer.enqueue(liquidate);
      await eventually(
        () => producer?.queues.liquidate.getJobCounts('completed'),
        (c) => c?.completed === 1,
        'the liquidation',
      );
      expect(received[2]?.orders).toMatchObject([{ side: 'sell', qty: 8 }]);
      const trail = await eventually(
        auditTrail,
        (a) => a.filter((e) => e.kind === 'failure').length === 3,
        'the failure audits',
      );
      const failures = trail.filter((e) => e.kind === 'failure');
      expect(failures.map((e) => e.data.outcome ?? 'final')).toEqual(['unknown', 'unknown', 'final']);
      return failures;
    } finally {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    }
  }

  it('a 2xx the venue answers unusably is an unknown outcome: retried, audited, its reservation kept', async () => {
    // for the reduction the venue answers 2xx with a body that is not {fills}
    const failures = await reductionWithoutUsableAnswer(
      (res) => res.writeHead(200, { 'content-type': 'text/plain' }).end('accepted'),
      5_000,
    );
    expect(failures[2]?.data).toMatchObject({ reservation: 'kept: the venue answered 2xx' });
  });

  it('a webhook timeout after sending is an unknown outcome: retried under the same key, audited, its reservation kept', async () => {
    // the venue takes every request; the reduction it never answers (it may have executed it)
    const failures = await reductionWithoutUsableAnswer(() => {}, 200);
    expect(failures[0]?.data).toMatchObject({
      reason: expect.stringMatching(/no answer/),
      reservation: expect.stringMatching(/^kept: .*outcome unknown/),
    });
    expect(failures[2]?.data).toMatchObject({
      reservation: expect.stringMatching(/^kept: .*outcome unknown/),
    });
  });

  it('a retry after the fills were logged but the audit failed writes the execution audit, not "stale"', async () => {
    await redis.sadd(keys.instruments, 'BTC-PERP');
    const venue = new CountingVenue();
    const process = makeProcessor(depsOf(venue));
    const data = sampleJob('k', 3, { kind: 'liquidate' });
    await breakAudit();
    await expect(process(jobOf(data, 0))).rejects.toThrow(/WRONGTYPE/);
    expect((await streamEvents()).map((e) => e?.type)).toEqual(['liquidation']);
    // during the backoff the evaluator applies the fill: the account's epoch moves on
    await repairAudit();
    await new RiskStore(redis, keys, 1, 0.01).write(0, [viewAt('k', 4)]);
    const out = await process(jobOf(data, 1));
    expect(out.skipped).toBeUndefined();
    expect(out.fills).toBe(1);
    // a third run (say the completion was lost) neither records nor audits twice, nor asks the venue again
    await process(jobOf(data, 2));
    expect(venue.calls).toHaveLength(1);
    expect(await streamEvents()).toHaveLength(1);
    const trail = await auditTrail();
    expect(trail.map((e) => e.kind)).toEqual(['execution']);
    expect(trail[0]?.data).toMatchObject({
      attempt: 2,
      fills: [{ qty: 2, id: expect.stringMatching(/^exec-/) }],
    });
    expect(trail[0]?.data.skipped).toBeUndefined();
  });

  it("a decision's or restriction's audit entry is written once, even when the write failed after the job was added", async () => {
    producer = new ActionProducer(redis, keys, { attempts: 1, backoffMs: 5 });
    const deps = outboxDeps(producer);
    const progress = { shard: 0, group: 'g', consumer: 'c', lastEntryId: '0-0', clock: 0 };
    const restrict: RestrictJob = {
      kind: 'restrict',
      account: 'm',
      reduceOnly: true,
      version: 1,
      epoch: 1,
      decidedAt: 5,
      reason: 'pd-reduce-tier',
      pd: 0.3,
      modelVersion: 'test@1',
    };
    const outbox = new Outbox();
    outbox.jobs.push(sampleJob('m', 1, { kind: 'liquidate' }), restrict);
    await breakAudit();
    await expect(outbox.flush(deps, progress)).rejects.toThrow(/WRONGTYPE/);
    expect(await producer.queues.liquidate.getJob(jobIdFor('liquidate', 'm', 1))).toBeDefined();
    await repairAudit();
    await outbox.flush(deps, progress);
    expect(outbox.pending()).toBe(false);
    // decided again (the next mark, or a replay): still one entry each
    outbox.jobs.push(sampleJob('m', 1, { kind: 'liquidate' }), restrict);
    await outbox.flush(deps, progress);
    const trail = await auditTrail();
    expect(trail.map((e) => `${e.kind}:${e.jobId}`)).toEqual([
      'decision:liquidate-m-1',
      'restriction:restrict-m-1',
    ]);
    expect(trail[0]?.data).toMatchObject({ decision: { action: 'LIQUIDATE' }, epoch: 1 });
    const enqueued = (await metrics.jobsEnqueued.get()).values.reduce((n, v) => n + v.value, 0);
    expect(enqueued).toBe(2);
    // the markers behind it live under the key prefix (deleted with it)
    const named: string[] = [];
    let cursor = '0';
    do {
      const [next, found] = await redis.scan(cursor, 'MATCH', `*${prefix}*`, 'COUNT', 1000);
      cursor = next;
      named.push(...found);
    } while (cursor !== '0');
    expect(named.some((k) => k.includes('once'))).toBe(true);
    expect(named.filter((k) => !k.startsWith(prefix))).toEqual([]);
  });

  it('a venue fill the log refuses fails the job for an operator: audited, reservation kept, not retried by a new decision', async () => {
    producer = new ActionProducer(redis, keys, { attempts: 3, backoffMs: 5 });
    // BTC-PERP was never declared: the log refuses the fill the venue reports
    const data = sampleJob('u', 2);
    await producer.enqueue(data);
    const venue = new CountingVenue();
    workers(venue);
    const q = producer.queues.deleverage;
    await eventually(
      () => q.getJobCounts('failed', 'completed'),
      (c) => (c.failed ?? 0) + (c.completed ?? 0) === 1,
      'the job to finish',
    );
    const [failed] = await q.getFailed();
    expect(failed?.failedReason.startsWith(NEEDS_OPERATOR)).toBe(true);
    expect(failed?.attemptsMade).toBe(1);
    expect(await streamEvents()).toEqual([]);
    const trail = await eventually(
      auditTrail,
      (a) => a.filter((e) => e.kind === 'failure').length === 2,
      'the failure audits',
    );
    expect(trail[0]?.data).toMatchObject({
      outcome: 'needs-operator',
      logStatuses: ['undeclared'],
      venueFills: [{ symbol: 'BTC-PERP', qty: 2 }],
    });
    expect(trail[1]?.data).toMatchObject({ reservation: 'kept: the venue answered 2xx' });
    // the 2 contracts stay reserved: of the 10, another job of epoch 2 gets 8
    expect(
      await new Reservations(redis, keys).reserve('u', 2, 'probe', [
        { symbol: 'BTC-PERP', qty: 10, cap: 10 },
      ]),
    ).toEqual([8]);
    expect(await producer.enqueue(data)).toMatchObject({ created: false, retried: false });
    expect(await q.getJobCounts('failed')).toMatchObject({ failed: 1 });
    expect(venue.calls).toHaveLength(1);
  });

  it("a liquidation rebate (negative venue fee) is recorded as 0, and the audit lists the recorded fee beside the venue's", async () => {
    await redis.sadd(keys.instruments, 'BTC-PERP');
    const inner = new SimulatedVenue();
    const rebating: ExecutionVenue = {
      name: 'rebating',
      async execute(req) {
        const r = await inner.execute(req);
        return { ...r, venue: 'rebating', fills: r.fills.map((f) => ({ ...f, fee: -0.25 })) };
      },
      setReduceOnly: (req) => inner.setReduceOnly(req),
    };
    await makeProcessor(depsOf(rebating))(jobOf(sampleJob('r', 1, { kind: 'liquidate' })));
    const [ev] = await streamEvents();
    expect(ev).toMatchObject({ type: 'liquidation', fee: 0 });
    const [entry] = await auditTrail();
    expect(entry?.data).toMatchObject({
      fills: [{ fee: 0 }],
      feeAdjusted: [{ fill: 0, venueFee: -0.25, recordedFee: 0 }],
    });
  });
});

describe('Redis down', () => {
  it('producers fail fast; workers wait for Redis and then process', async () => {
    const port = await freePort();
    let server = await startRedisOn(port);
    const fastConn = createRedis(server.url, 'fail-fast');
    await fastConn.connect();
    const p = new ActionProducer(fastConn, keyspace('down'), { attempts: 1, backoffMs: 10 });
    await p.enqueue(sampleJob('f', 1)); // works while up
    await server.stop();
    await expect(p.enqueue(sampleJob('f', 2))).rejects.toThrow();

    // a worker started while Redis is down waits, and processes once Redis is back
    const waitConn = createRedis(server.url, 'wait');
    const recConn = createRedis(server.url, 'wait');
    void waitConn.connect().catch(() => {});
    void recConn.connect().catch(() => {});
    const venue = new CountingVenue();
    const w = startExecutionWorkers({
      connection: waitConn,
      redis: recConn,
      keys: keyspace('down'),
      store: new RiskStore(recConn, keyspace('down'), 1, 0.01),
      restrictions: new RestrictionStore(recConn, keyspace('down'), 1),
      venue,
      audit: new AuditLog(recConn, keyspace('down')),
      metrics,
      log: silent,
      concurrency: 1,
      dedupTtlMs: 60_000,
    });
    await new Promise((r) => setTimeout(r, 300));
    server = await startRedisOn(port);
    try {
      const up = createRedis(server.url, 'fail-fast');
      await up.connect();
      const p2 = new ActionProducer(up, keyspace('down'), { attempts: 1, backoffMs: 10 });
      await p2.enqueue(sampleJob('g', 1));
      await eventually(
        () => venue.calls.length,
        (n) => n === 1,
        'the waiting worker to process',
      );
      expect(venue.calls).toEqual([jobIdFor('deleverage', 'g', 1)]);
      await w.close();
      await p2.close();
      await p.close().catch(() => {});
      up.disconnect();
    } finally {
      waitConn.disconnect();
      recConn.disconnect();
      fastConn.disconnect();
      await server.stop();
    }
  });
});
