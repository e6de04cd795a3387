/**
 * The request sent under an execution job's idempotency key, against a real Redis and a local HTTP venue:
 * every retry sends the first attempt's bytes (even when the market moved in between), nothing is sent
 * when the request cannot be kept, a job that failed for good with nothing executed runs again under a new
 * key with a fresh request (never blocked by a kept request its reservation no longer covers), a Redis
 * failure after the venue acted keeps the reservation (writes failed by an injected ExecutionRecords
 * subclass), the record and kept request expire together, and a venue's redirect is never followed (the
 * job fails for an operator, its reservation kept). Generations: a run of the next generation racing the
 * release of the retired one keeps its share, a 5xx or 408 is never retired, the final audit names only a
 * generation that kept a request; and record writes whose reply a proxy loses (the 'wait' client resends
 * them) count once.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  type ExecutedAnswer,
  ExecutionRecords,
  KEEP_MS,
  MARKS_KEPT,
  mayHaveExecuted,
  type SentRequest,
} from '../../src/service/queue/execution-record.js';
import {
  type ExecutionJob,
  jobIdFor,
  NEEDS_OPERATOR,
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
import { type Keyspace, keyspace } from '../../src/service/state/keys.js';
import { writeMarket } from '../../src/service/state/market.js';
import { createRedis } from '../../src/service/state/redis.js';
import { Reservations } from '../../src/service/state/reservations.js';
import { RestrictionStore } from '../../src/service/state/restrictions.js';
import {
  type ExecutionRequest,
  type ExecutionResult,
  type ExecutionVenue,
  VenueUnavailableError,
} from '../../src/service/venue/types.js';
import { WebhookVenue } from '../../src/service/venue/webhook.js';
import { lossyRedisProxy } from '../helpers/lossy-redis-proxy.js';
import { connect, deletePrefix, freshPrefix, redisUrl } from '../helpers/redis.js';
import {
  capturedLog,
  auditTrail as kitAuditTrail,
  sampleJob as kitSampleJob,
  streamEvents as kitStreamEvents,
  marketInput,
  workerDeps,
} from './queue-kit.js';
import { eventually } from './wait.js';

/** ms, event time of the sample decision */
const DECIDED_AT = 1_700_000_000_000;
const SECRET = 'a-long-enough-webhook-secret';

function sampleJob(account: string, epoch: number): ExecutionJob {
  return kitSampleJob(account, epoch, { decidedAt: DECIDED_AT });
}

/** LIQUIDATE of the whole position (10 contracts of BTC-PERP) at `epoch` */
function liquidateJob(account: string, epoch: number): ExecutionJob {
  const job = sampleJob(account, epoch);
  return {
    ...job,
    kind: 'liquidate',
    orders: [{ symbol: 'BTC-PERP', side: 'sell', qty: 10, notional: 1000, positionQty: 10 }],
    decision: { ...job.decision, action: 'LIQUIDATE', rule: 'equity-below-mm' },
  };
}

function restrictJob(account: string): RestrictJob {
  return {
    kind: 'restrict',
    account,
    reduceOnly: true,
    version: 1,
    epoch: 1,
    decidedAt: DECIDED_AT,
    reason: 'pd-reduce-tier',
    pd: 0.3,
    modelVersion: 'test@1',
  };
}

/** market inputs at mark `mark` (USD) */
const market = marketInput;

/** The evaluators' latest market for BTC-PERP: mark `mark` (USD) as of event time `ts` (ms). */
const moveMarket = (mark: number, ts: number) =>
  writeMarket(redis, keys, new Map([['BTC-PERP', { input: market(mark), ts }]]));

interface Received {
  key: string;
  method: string;
  url: string;
  raw: string;
}

/**
 * A local HTTP venue that records every request (raw body) and answers with `handle`. `n` counts the
 * requests under the same idempotency key before this one.
 */
async function httpVenue(
  handle: (r: Received, n: number, req: IncomingMessage, res: ServerResponse) => void | Promise<void>,
): Promise<{ url: string; received: Received[] }> {
  const received: Received[] = [];
  const server = createServer((req, res) => {
    let raw = '';
    req.on('data', (c) => {
      raw += c;
    });
    req.on('end', () => {
      const r: Received = {
        key: String(req.headers['idempotency-key']),
        method: String(req.method),
        url: String(req.url),
        raw,
      };
      const n = received.filter((x) => x.key === r.key).length;
      received.push(r);
      void Promise.resolve()
        .then(() => handle(r, n, req, res))
        .catch(() => res.destroy());
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  servers.push(server);
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/execute`, received };
}

/**
 * A venue that checks idempotency keys as Stripe does: a key's first body is the only one it accepts under
 * that key (422 otherwise). Executions answer fills at 88 USD, restrictions 204.
 */
function answerChecked(r: Received, first: Received[], res: ServerResponse): void {
  const firstBody = first.find((x) => x.key === r.key)?.raw;
  if (firstBody !== undefined && firstBody !== r.raw) {
    res.writeHead(422).end('idempotency key reused with a different body');
    return;
  }
  const body = JSON.parse(r.raw) as {
    kind: string;
    decidedAt: number;
    orders?: { symbol: string; side: string; qty: number }[];
  };
  if (body.kind === 'restrict') {
    res.writeHead(204).end();
    return;
  }
  const fills = (body.orders ?? []).map((o) => ({
    symbol: o.symbol,
    side: o.side,
    qty: o.qty,
    price: 88,
    fee: 0.1,
    ts: body.decidedAt,
  }));
  res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ fills }));
}

let prefix: string;
let keys: Keyspace;
let redis: Redis;
let conn: Redis;
let running: ExecutionWorkers | undefined;
let producer: ActionProducer | undefined;
let servers: Server[] = [];
/** run after each test (before the connections close), newest first */
let cleanups: (() => unknown)[] = [];
const admin = connect();

beforeEach(async () => {
  prefix = freshPrefix('svc-exec-request');
  keys = keyspace(prefix);
  redis = createRedis(redisUrl(), 'wait');
  conn = createRedis(redisUrl(), 'wait');
  await Promise.all([redis.connect(), conn.connect()]);
  await redis.sadd(keys.instruments, 'BTC-PERP');
});
afterEach(async () => {
  for (const f of cleanups.reverse()) await f();
  cleanups = [];
  await running?.close();
  await producer?.close();
  running = undefined;
  producer = undefined;
  for (const s of servers) {
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }
  servers = [];
  redis.disconnect();
  conn.disconnect();
  await deletePrefix(admin, prefix);
});
afterAll(() => admin.disconnect());

function depsOf(url: string, records?: ExecutionRecords): WorkerDeps {
  return workerDeps(
    { conn, redis, keys },
    new WebhookVenue({ url, secret: SECRET, timeoutMs: 5_000 }),
    records,
  );
}

function start(url: string, attempts: number, records?: ExecutionRecords): ActionProducer {
  producer = new ActionProducer(redis, keys, { attempts, backoffMs: 5 });
  running = startExecutionWorkers(depsOf(url, records));
  return producer;
}

/** contracts of BTC-PERP another job of `epoch` could still reserve, out of the position's 10 */
async function room(account: string, epoch: number): Promise<number> {
  const r = new Reservations(redis, keys);
  const [grant] = await r.reserve(account, epoch, 'probe', [{ symbol: 'BTC-PERP', qty: 10, cap: 10 }]);
  await r.release(account, epoch, 'probe', ['BTC-PERP']);
  return grant ?? 0;
}

/** The audit trail, oldest first. */
const auditTrail = () => kitAuditTrail(redis, keys);
const streamEvents = () => kitStreamEvents(redis, keys);

/**
 * A send that may have executed was sent again as it was, under its key (`id`), and never became a second
 * order: the venue executed one key, one fill was logged, the job's 2 contracts of 10 stay reserved.
 */
async function expectResentOnce(
  id: string,
  received: readonly { key: string; raw: string }[],
  executed: ReadonlySet<string>,
): Promise<void> {
  expect(received.map((r) => r.key)).toEqual([id, id]);
  expect(received[1]?.raw).toBe(received[0]?.raw);
  expect([...executed]).toEqual([id]);
  expect(await streamEvents()).toHaveLength(1);
  expect(await room('acct', 1)).toBe(8);
}

/** The evaluator decides `job` again: it is run again (a job that had failed for good) and completes. */
async function redecideAndComplete(p: ActionProducer, job: ExecutionJob): Promise<void> {
  expect(await p.enqueue(job)).toMatchObject({ retried: true });
  await eventually(
    () => p.queues[job.kind].getJobCounts('completed'),
    (c) => c.completed === 1,
    `the ${job.kind} job to complete`,
  );
}

describe('the request sent under an idempotency key', () => {
  for (const outage of ['504', 'reset'] as const) {
    it(`a reduction retried after ${outage === '504' ? "a gateway's 504" : 'a connection reset after sending'} sends the first body byte for byte, though the market moved`, async () => {
      await moveMarket(100, DECIDED_AT + 1_000);
      const venue = await httpVenue(async (r, n, req, res) => {
        if (n === 0 && r.key.startsWith('deleverage-acct-1')) {
          // during the outage the market moves on: a rebuilt request would carry another event time
          await moveMarket(90, DECIDED_AT + 60_000);
          if (outage === '504') res.writeHead(504).end('upstream timed out');
          else req.socket.destroy();
          return;
        }
        answerChecked(r, venue.received, res);
      });
      const p = start(venue.url, 3);
      await p.enqueue(sampleJob('acct', 1));
      await eventually(
        () => p.queues.deleverage.getJobCounts('completed', 'failed'),
        (c) => c.completed === 1 || c.failed === 1,
        'the reduction to finish',
      );
      expect(await p.queues.deleverage.getJobCounts('completed')).toEqual({ completed: 1 });
      const sent = venue.received.filter((r) => r.key === 'deleverage-acct-1');
      expect(sent).toHaveLength(2);
      expect(sent[1]?.raw).toBe(sent[0]?.raw);
      expect(JSON.parse(sent[0]?.raw ?? '{}')).toMatchObject({
        decidedAt: DECIDED_AT + 1_000,
        orders: [{ symbol: 'BTC-PERP', side: 'sell', qty: 2, reduceOnly: true }],
      });
      // recorded once, at the event time the venue was sent
      const events = await streamEvents();
      expect(events).toHaveLength(1);
      expect(events[0]).toMatchObject({ type: 'fill', qty: 2, price: 88, ts: DECIDED_AT + 1_000 });

      // a new decision (a new epoch: a new job and key) builds its own request from the market now
      await p.enqueue(sampleJob('acct', 2));
      await eventually(
        () => p.queues.deleverage.getJobCounts('completed'),
        (c) => c.completed === 2,
        'the second reduction',
      );
      const second = venue.received.filter((r) => r.key === 'deleverage-acct-2');
      expect(second).toHaveLength(1);
      expect(JSON.parse(second[0]?.raw ?? '{}')).toMatchObject({ decidedAt: DECIDED_AT + 60_000 });
    });
  }

  it('a restriction retried after a 504 sends the first body byte for byte', async () => {
    const venue = await httpVenue((r, n, _req, res) => {
      if (n === 0) return void res.writeHead(504).end('upstream timed out');
      answerChecked(r, venue.received, res);
    });
    const p = start(venue.url, 3);
    await p.enqueue(restrictJob('r'));
    await eventually(
      () => p.queues.restrict.getJobCounts('completed', 'failed'),
      (c) => c.completed === 1 || c.failed === 1,
      'the restriction to finish',
    );
    expect(await p.queues.restrict.getJobCounts('completed')).toEqual({ completed: 1 });
    expect(venue.received).toHaveLength(2);
    expect(venue.received[1]?.raw).toBe(venue.received[0]?.raw);
    expect(await new RestrictionStore(redis, keys, 1).applied('r')).toBe(1);
  });

  it('a reduction that failed for good, the venue having executed nothing, runs again on a new decision under a new key with a fresh request', async () => {
    await moveMarket(100, DECIDED_AT + 1_000);
    // the venue turns the first request away (a 429: not processed) as the market moves
    const venue = await httpVenue(async (r, n, _req, res) => {
      if (n === 0 && !r.key.includes('#')) {
        await moveMarket(90, DECIDED_AT + 60_000);
        res.writeHead(429).end('slow down');
        return;
      }
      answerChecked(r, venue.received, res);
    });
    const p = start(venue.url, 1);
    const job = sampleJob('acct', 1);
    const id = jobIdFor('deleverage', 'acct', 1);
    await p.enqueue(job);
    const [final] = await eventually(
      async () => (await auditTrail()).filter((e) => e.kind === 'failure' && e.data.attempts !== undefined),
      (f) => f.length === 1,
      'the final failure',
    );
    // given back and retired in one step: the venue did not execute what it was sent under the job id
    expect(final?.data).toMatchObject({ reservation: 'released', retired: { key: id, next: `${id}#g1` } });
    expect(await room('acct', 1)).toBe(10);
    await redecideAndComplete(p, job);
    // the old key is never used again (a venue may keep its failure); the new one carries one body, built now
    expect(venue.received.map((r) => r.key)).toEqual([id, `${id}#g1`]);
    expect(JSON.parse(venue.received[1]?.raw ?? '{}')).toMatchObject({
      idempotencyKey: `${id}#g1`,
      decidedAt: DECIDED_AT + 60_000,
      orders: [{ symbol: 'BTC-PERP', side: 'sell', qty: 2 }],
    });
    expect(await streamEvents()).toHaveLength(1);
    expect(await room('acct', 1)).toBe(8);
    const trail = await eventually(auditTrail, (a) => a.some((e) => e.kind === 'execution'), 'the audit');
    expect(trail.find((e) => e.kind === 'execution')?.data).toMatchObject({ idempotencyKey: `${id}#g1` });
  });

  it('a liquidation whose kept request is no longer covered is not blocked for the epoch: decided again, it sends a fresh request for what it is granted, under a new key', async () => {
    // epoch 7, a position of 10: the liquidation's first request (10) is turned away (429) on every attempt
    const id = jobIdFor('liquidate', 'acct', 7);
    const venue = await httpVenue((r, _n, _req, res) => {
      if (r.key === id) return void res.writeHead(429).end('slow down');
      answerChecked(r, venue.received, res);
    });
    const p = start(venue.url, 2);
    const job = liquidateJob('acct', 7);
    await p.enqueue(job);
    await eventually(
      async () => (await auditTrail()).filter((e) => e.kind === 'failure' && e.data.attempts !== undefined),
      (f) => f.length === 1,
      'the final failure',
    );
    expect(venue.received.map((r) => r.key)).toEqual([id, id]);
    expect(await room('acct', 7)).toBe(10);
    // still at epoch 7, a reduction of the epoch reserves 3 and holds them (its outcome unknown)
    const other = new Reservations(redis, keys);
    expect(
      await other.reserve('acct', 7, 'deleverage-acct-7', [{ symbol: 'BTC-PERP', qty: 3, cap: 10 }]),
    ).toEqual([3]);
    // the market crashes: LIQUIDATE is decided again at epoch 7
    await redecideAndComplete(p, job);
    expect(venue.received.map((r) => r.key)).toEqual([id, id, `${id}#g1`]);
    expect(JSON.parse(venue.received[2]?.raw ?? '{}')).toMatchObject({
      idempotencyKey: `${id}#g1`,
      kind: 'liquidate',
      orders: [{ symbol: 'BTC-PERP', side: 'sell', qty: 7 }],
    });
    // one body per key, ever
    for (const key of new Set(venue.received.map((r) => r.key)))
      expect(new Set(venue.received.filter((r) => r.key === key).map((r) => r.raw)).size).toBe(1);
    const events = await streamEvents();
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ type: 'liquidation', qty: 7 });
    expect(await room('acct', 7)).toBe(0);
  });

  it('nothing is sent when the request cannot be kept in Redis', async () => {
    const venue = await httpVenue((r, _n, _req, res) => answerChecked(r, venue.received, res));
    const deps = depsOf(venue.url);
    // a real Redis error on the job's record, where its request is kept (a string, not a hash)
    const data = sampleJob('k', 1);
    const id = jobIdFor('deleverage', 'k', 1);
    const requestKey = `${prefix}:exec:${id}`;
    await redis.set(requestKey, 'x');
    const job = { id, data, attemptsMade: 0 } as unknown as Job;
    await expect(makeProcessor(deps)(job)).rejects.toThrow(/WRONGTYPE/);
    const restrict = restrictJob('k');
    const restrictKey = `${prefix}:exec:restrict-k-1`;
    await redis.set(restrictKey, 'x');
    const rjob = { id: 'restrict-k-1', data: restrict, attemptsMade: 0 } as unknown as Job;
    await expect(makeRestrictProcessor(deps)(rjob)).rejects.toThrow(/WRONGTYPE/);
    expect(venue.received).toEqual([]);
    expect(await streamEvents()).toEqual([]);
    expect(await new RestrictionStore(redis, keys, 1).applied('k')).toBe(0);
    // the key repaired, the retries send once each
    await redis.del(requestKey, restrictKey);
    expect(await makeProcessor(deps)({ ...job, attemptsMade: 1 } as Job)).toMatchObject({ fills: 1 });
    await makeRestrictProcessor(deps)({ ...rjob, attemptsMade: 1 } as Job);
    expect(venue.received.map((r) => r.key)).toEqual([id, 'restrict-k-1']);
  });
});

describe('a redirect from the venue', () => {
  for (const status of [307, 302] as const) {
    it(`${status}: not followed; the reduction fails at once for an operator, its reservation kept, not retried by a new decision`, async () => {
      const target = await httpVenue((r, _n, _req, res) => answerChecked(r, target.received, res));
      const venue = await httpVenue((_r, _n, _req, res) => {
        res.writeHead(status, { location: target.url }).end('moved');
      });
      const p = start(venue.url, 3);
      const job = sampleJob('acct', 1);
      await p.enqueue(job);
      await eventually(
        () => p.queues.deleverage.getJobCounts('failed', 'completed'),
        (c) => c.failed === 1 || c.completed === 1,
        'the reduction to finish',
      );
      const [failed] = await p.queues.deleverage.getFailed();
      expect(failed?.attemptsMade).toBe(1);
      expect(failed?.failedReason.startsWith(NEEDS_OPERATOR)).toBe(true);
      expect(failed?.failedReason).toContain(`answered ${status}`);
      expect(failed?.failedReason).toContain(target.url);
      expect(venue.received).toHaveLength(1);
      expect(target.received).toEqual([]);
      const trail = await eventually(
        auditTrail,
        (a) => a.filter((e) => e.kind === 'failure').length === 2,
        'the failure audits',
      );
      expect(trail.map((e) => e.kind)).toEqual(['failure', 'failure']);
      expect(trail[0]?.data).toMatchObject({ outcome: 'needs-operator', status, location: target.url });
      expect(trail[1]?.data).toMatchObject({ reservation: expect.stringMatching(/^kept: .*redirect/) });
      expect(await room('acct', 1)).toBe(8);
      // decided again: the same key would be redirected again; it waits for an operator
      expect(await p.enqueue(job)).toMatchObject({ created: false, retried: false });
      expect(venue.received).toHaveLength(1);
      expect(await streamEvents()).toEqual([]);
    });
  }

  it('a restriction redirected fails at once for an operator; the target receives nothing', async () => {
    const target = await httpVenue((r, _n, _req, res) => answerChecked(r, target.received, res));
    const venue = await httpVenue((_r, _n, _req, res) => {
      res.writeHead(308, { location: target.url }).end();
    });
    const p = start(venue.url, 3);
    await p.enqueue(restrictJob('r'));
    await eventually(
      () => p.queues.restrict.getJobCounts('failed', 'completed'),
      (c) => c.failed === 1 || c.completed === 1,
      'the restriction to finish',
    );
    const [failed] = await p.queues.restrict.getFailed();
    expect(failed?.attemptsMade).toBe(1);
    expect(failed?.failedReason).toMatch(new RegExp(`^${NEEDS_OPERATOR}webhook answered 308`));
    expect(venue.received).toHaveLength(1);
    expect(target.received).toEqual([]);
    expect(await new RestrictionStore(redis, keys, 1).applied('r')).toBe(0);
    // audited with the status and Location, as a reduction's redirect is
    const trail = await eventually(
      auditTrail,
      (a) => a.some((e) => e.kind === 'failure' && e.data.outcome === 'needs-operator'),
      'the redirect audit',
    );
    expect(trail.find((e) => e.data.outcome === 'needs-operator')?.data).toMatchObject({
      kind: 'restrict',
      version: 1,
      status: 308,
      location: target.url,
    });
  });

  it('a long Location is audited cut to 300 characters, as in the failure message', async () => {
    const location = `http://127.0.0.1:1/elsewhere?${'a'.repeat(1_000)}`;
    const venue = await httpVenue((_r, _n, _req, res) => {
      res.writeHead(307, { location }).end();
    });
    start(venue.url, 1);
    await producer?.enqueue(sampleJob('acct', 1));
    const trail = await eventually(
      auditTrail,
      (a) => a.some((e) => e.kind === 'failure' && e.data.outcome === 'needs-operator'),
      'the redirect audit',
    );
    expect(trail.find((e) => e.data.outcome === 'needs-operator')?.data.location).toBe(
      location.slice(0, 300),
    );
  });
});

/** Execution records whose `failing` write throws once (a Redis blip at that point), then work again. */
class FailingRecords extends ExecutionRecords {
  failures = 0;
  constructor(private readonly failing: 'answeredWith' | 'sentUnanswered' | 'redirected' | 'notExecuted') {
    super(redis, keys);
  }
  private blip(what: string): void {
    if (what === this.failing && this.failures++ === 0) throw new Error(`Redis blip: ${what} not written`);
  }
  override async answeredWith(jobId: string, answer: ExecutedAnswer): Promise<void> {
    this.blip('answeredWith');
    await super.answeredWith(jobId, answer);
  }
  override async sentUnanswered(jobId: string, reason: string): Promise<void> {
    this.blip('sentUnanswered');
    await super.sentUnanswered(jobId, reason);
  }
  override async redirected(jobId: string, reason: string): Promise<void> {
    this.blip('redirected');
    await super.redirected(jobId, reason);
  }
  override async notExecuted(jobId: string, n: number, reason: string): Promise<void> {
    this.blip('notExecuted');
    await super.notExecuted(jobId, n, reason);
  }
}

describe('Redis failing after the venue acted', () => {
  const cases = [
    { answer: '2xx', write: 'answeredWith' },
    { answer: '504', write: 'sentUnanswered' },
    { answer: '303', write: 'redirected' },
  ] as const;
  for (const c of cases) {
    it(`the venue answers ${c.answer} on the last attempt and ${c.write} fails: the reservation is kept, and a new decision resends the same body under the same key`, async () => {
      const id = jobIdFor('deleverage', 'acct', 1);
      const venue = await httpVenue((r, n, _req, res) => {
        if (n === 0 && c.answer === '504') return void res.writeHead(504).end('upstream timed out');
        if (n === 0 && c.answer === '303') return void res.writeHead(303, { location: '/done' }).end();
        answerChecked(r, venue.received, res);
      });
      const records = new FailingRecords(c.write);
      const p = start(venue.url, 1, records);
      const job = sampleJob('acct', 1);
      await p.enqueue(job);
      const [final] = await eventually(
        async () => (await auditTrail()).filter((e) => e.kind === 'failure' && e.data.attempts !== undefined),
        (f) => f.length === 1,
        'the final failure',
      );
      expect(records.failures).toBe(1);
      expect(final?.data).toMatchObject({
        reason: `Redis blip: ${c.write} not written`,
        reservation: expect.stringMatching(/^kept: a request was sent and its outcome is not recorded/),
      });
      expect(final?.data.retired).toBeUndefined();
      // the 2 contracts sent stay reserved: no other job of the epoch can close them again
      expect(await room('acct', 1)).toBe(8);
      // decided again: the venue may have executed, so the same body goes under the same key
      await redecideAndComplete(p, job);
      expect(venue.received.map((r) => r.key)).toEqual([id, id]);
      expect(venue.received[1]?.raw).toBe(venue.received[0]?.raw);
      expect(await streamEvents()).toHaveLength(1);
      expect(await room('acct', 1)).toBe(8);
    });
  }

  it('a 429 on the last attempt whose record fails: the reservation is kept, and the audit says why', async () => {
    const id = jobIdFor('deleverage', 'acct', 1);
    const venue = await httpVenue((r, n, _req, res) => {
      if (n === 0) return void res.writeHead(429).end('busy');
      answerChecked(r, venue.received, res);
    });
    const p = start(venue.url, 1, new FailingRecords('notExecuted'));
    await p.enqueue(sampleJob('acct', 1));
    const failures = await eventually(
      async () => (await auditTrail()).filter((e) => e.kind === 'failure'),
      (f) => f.some((e) => e.data.attempts !== undefined),
      'the final failure',
    );
    expect(failures.map((e) => e.data.outcome ?? 'final')).toEqual(['unavailable', 'final']);
    expect(failures[0]?.data).toMatchObject({
      reason: 'webhook answered 429: busy',
      reservation: expect.stringMatching(
        /^kept: .*outcome is not recorded.*: Redis blip: notExecuted not written$/,
      ),
    });
    expect(failures[1]?.data).toMatchObject({
      reservation: expect.stringMatching(/^kept: a request was sent and its outcome is not recorded/),
    });
    expect(await room('acct', 1)).toBe(8);
    expect(venue.received.map((r) => r.key)).toEqual([id]);
  });

  it('a request another attempt kept first is sent only if this attempt holds it; else it is retired and rebuilt for the grant', async () => {
    /** keeps, the first time, a request for 5 contracts as a concurrent copy of the job would have */
    class ConcurrentKeep extends ExecutionRecords {
      first = true;
      override async keep<R>(
        jobId: string,
        gen: number,
        request: R,
        body: string | null,
      ): Promise<{ kept: SentRequest<R>; mine: boolean }> {
        if (this.first) {
          this.first = false;
          const r = request as ExecutionRequest;
          const other: ExecutionRequest = { ...r, orders: r.orders.map((o) => ({ ...o, qty: 5 })) };
          await super.keep(
            jobId,
            gen,
            other,
            new WebhookVenue({ url: '', secret: SECRET, timeoutMs: 1 }).executionBody(other),
          );
        }
        return super.keep(jobId, gen, request, body);
      }
    }
    const venue = await httpVenue((r, _n, _req, res) => answerChecked(r, venue.received, res));
    const deps = depsOf(venue.url, new ConcurrentKeep(redis, keys));
    const data = sampleJob('c', 1);
    data.orders = [{ symbol: 'BTC-PERP', side: 'sell', qty: 5, notional: 500, positionQty: 10 }];
    const id = jobIdFor('deleverage', 'c', 1);
    // another job of the epoch holds 7 of the 10: this one is granted 3
    await new Reservations(redis, keys).reserve('c', 1, 'other', [{ symbol: 'BTC-PERP', qty: 7, cap: 10 }]);
    const job = { id, data, attemptsMade: 0 } as unknown as Job;
    await expect(makeProcessor(deps)(job)).rejects.toThrow(/not covered by this job's reservation.*5/);
    expect(venue.received).toEqual([]);
    // the retry: the kept request (never sent) is retired, a fresh one for the 3 granted goes under a new key
    expect(await makeProcessor(deps)({ ...job, attemptsMade: 1 } as Job)).toMatchObject({ fills: 1 });
    expect(venue.received.map((r) => r.key)).toEqual([`${id}#g1`]);
    expect(JSON.parse(venue.received[0]?.raw ?? '{}')).toMatchObject({ orders: [{ qty: 3 }] });
    expect(await room('c', 1)).toBe(0);
    // the retirement is audited: which generation, why, and the key the fresh request went under
    const retired = (await auditTrail()).filter((e) => e.data.outcome === 'retired');
    expect(retired).toHaveLength(1);
    expect(retired[0]).toMatchObject({ kind: 'failure', jobId: id });
    expect(retired[0]?.data).toMatchObject({
      retired: { key: id, gen: 0, next: `${id}#g1` },
      reason: expect.stringMatching(/not covered by its reservation.*BTC-PERP 3 < 5/),
    });
  });
});

describe('the execution record', () => {
  it('reading a job renews the expiry of its record together with its kept request', async () => {
    const venue = await httpVenue((_r, _n, _req, res) => void res.writeHead(504).end('upstream timed out'));
    const deps = depsOf(venue.url);
    const id = jobIdFor('deleverage', 't', 1);
    const job = { id, data: sampleJob('t', 1), attemptsMade: 0 } as unknown as Job;
    await expect(makeProcessor(deps)(job)).rejects.toThrow(/504/);
    const execKeys = await redis.keys(`${prefix}:exec:${id}*`);
    expect(execKeys.length).toBeGreaterThan(0);
    // ms: as if the last use was 7 days minus a minute ago
    for (const k of execKeys) await redis.pexpire(k, 60_000);
    const rec = await new ExecutionRecords(redis, keys).get(id);
    expect(rec.answeredAt).toBeDefined();
    for (const k of execKeys) expect(await redis.pttl(k), k).toBeGreaterThan(KEEP_MS - 60_000);
  });

  it('a job run again and again through a long outage: its record stays bounded, its counts exact', async () => {
    const r = new ExecutionRecords(redis, keys);
    const key = `${prefix}:exec:j`;
    const gens = 3 * MARKS_KEPT;
    // every run: three sends, none executed (connection refused), then failed for good and retired
    for (let gen = 0; gen < gens; gen++) {
      await r.keep('j', gen, { orders: [], gen }, null);
      for (let a = 0; a < 3; a++) await r.notExecuted('j', await r.sending('j', gen), 'connection refused');
      expect(await r.retire('j', gen)).toMatchObject({ status: 'retired', gen: gen + 1 });
    }
    const fields = await redis.hkeys(key);
    const marks = (p: string) => fields.filter((f) => f.startsWith(p)).length;
    expect(marks('snd:')).toBe(MARKS_KEPT);
    expect(marks('ne:')).toBe(MARKS_KEPT);
    expect(marks('ret:')).toBe(MARKS_KEPT);
    expect(fields.length).toBeLessThanOrEqual(3 * MARKS_KEPT + 10);
    const rec = await r.get('j');
    expect(rec).toMatchObject({ gen: gens, sends: 3 * gens, notExecuted: 3 * gens });
    expect(mayHaveExecuted(rec)).toBe(false);
    // the next run's send may execute: the counts say so, and the generation is not retired
    await r.keep('j', gens, { orders: [] }, null);
    await r.sending('j', gens);
    expect(mayHaveExecuted(await r.get('j'))).toBe(true);
    expect(await r.retire('j', gens)).toEqual({ status: 'sent', gen: gens });
    expect((await redis.hkeys(key)).length).toBeLessThanOrEqual(3 * MARKS_KEPT + 10);
  });

  it('marks past the window err on the safe side: an old send is never counted twice, nor counted late', async () => {
    const r = new ExecutionRecords(redis, keys);
    await r.keep('j', 0, { orders: [] }, null);
    const first = await r.sending('j', 0);
    await r.notExecuted('j', first, 'connection refused');
    // a send whose answer is slow: its not-executed mark comes after MARKS_KEPT more sends
    const slow = await r.sending('j', 0);
    for (let i = 0; i < MARKS_KEPT; i++) await r.notExecuted('j', await r.sending('j', 0), 'refused');
    expect(await r.get('j')).toMatchObject({ sends: MARKS_KEPT + 2, notExecuted: MARKS_KEPT + 1 });
    // the first send's mark again (a resent call): not counted twice
    await r.notExecuted('j', first, 'connection refused');
    // the slow send's mark, past the window: refused, the send stays possibly executed
    await r.notExecuted('j', slow, 'refused');
    const rec = await r.get('j');
    expect(rec).toMatchObject({ sends: MARKS_KEPT + 2, notExecuted: MARKS_KEPT + 1 });
    expect(mayHaveExecuted(rec)).toBe(true);
    expect(await r.retire('j', 0)).toEqual({ status: 'sent', gen: 0 });
  });

  it('a retirement repeated within the window answers as the first did; one older answers moved', async () => {
    const r = new ExecutionRecords(redis, keys);
    for (let gen = 0; gen <= MARKS_KEPT; gen++) await r.retire('j', gen);
    // generation MARKS_KEPT + 1 now; the last MARKS_KEPT retirements are remembered
    expect(await r.retire('j', 1)).toMatchObject({ status: 'retired', gen: 2 });
    expect(await r.retire('j', 0)).toEqual({ status: 'moved', gen: MARKS_KEPT + 1 });
    expect((await r.get('j')).gen).toBe(MARKS_KEPT + 1);
  });

  it('a 2xx after a redirect clears the redirect', async () => {
    const r = new ExecutionRecords(redis, keys);
    await r.redirected('j', 'webhook answered 307');
    expect((await r.get('j')).redirected).toBe(true);
    const answer: ExecutedAnswer = {
      venue: 'webhook',
      fills: [],
      granted: [],
      eventTime: DECIDED_AT,
      contractSize: {},
    };
    await r.answeredWith('j', answer);
    const rec = await r.get('j');
    expect(rec.redirected).toBeUndefined();
    expect(rec.answer).toEqual(answer);
  });
});

/** The final failure audit of the one job that failed for good (waits for it). */
async function finalFailure() {
  const [final] = await eventually(
    async () => (await auditTrail()).filter((e) => e.kind === 'failure' && e.data.attempts !== undefined),
    (f) => f.length === 1,
    'the final failure',
  );
  return final;
}

/** Execution records that run `between` once, right after the first `retire` returns. */
class RunAfterRetire extends ExecutionRecords {
  between: (() => Promise<unknown>) | undefined;
  override async retire(jobId: string, gen: number) {
    const r = await super.retire(jobId, gen);
    const f = this.between;
    this.between = undefined;
    if (f) await f();
    return r;
  }
}

describe('a job failed for good and run again (generations)', () => {
  it('a run of the next generation between the retirement and the release keeps what it sends reserved', async () => {
    const id = jobIdFor('deleverage', 'acct', 1);
    // the first request is turned away (429: not executed); the run under the new key executes
    const venue = await httpVenue((r, n, _req, res) => {
      if (r.key === id && n === 0) return void res.writeHead(429).end('slow down');
      answerChecked(r, venue.received, res);
    });
    const records = new RunAfterRetire(redis, keys);
    const data = sampleJob('acct', 1);
    // the failed job run again (a new decision) after the retirement, before its reservation is given back
    let rerun: unknown;
    records.between = async () => {
      rerun = await makeProcessor(depsOf(venue.url))({ id, data, attemptsMade: 0 } as unknown as Job);
    };
    start(venue.url, 1, records);
    await producer?.enqueue(data);
    const final = await finalFailure();
    expect(rerun).toMatchObject({ fills: 1 });
    expect(venue.received.map((r) => r.key)).toEqual([id, `${id}#g1`]);
    expect(final?.data).toMatchObject({ reservation: 'released', retired: { key: id, next: `${id}#g1` } });
    // the 2 contracts executed under #g1 stay reserved: no other job of the epoch can close them again
    expect(await room('acct', 1)).toBe(8);
    expect(await streamEvents()).toHaveLength(1);
  });

  for (const status of [500, 503, 408] as const) {
    it(`a ${status} may have been executed: the reservation is kept, nothing is retired, a new decision resends the same body under the same key`, async () => {
      const id = jobIdFor('deleverage', 'acct', 1);
      // the venue executes every request, once per key; the first it answers `status` (a handler failing
      // after the order was placed, a proxy giving up on it)
      const executed = new Set<string>();
      const venue = await httpVenue((r, n, _req, res) => {
        executed.add(r.key);
        if (n === 0) return void res.writeHead(status).end('oops');
        answerChecked(r, venue.received, res);
      });
      const p = start(venue.url, 1);
      const job = sampleJob('acct', 1);
      await p.enqueue(job);
      const final = await finalFailure();
      expect(final?.data).toMatchObject({ reservation: expect.stringMatching(/^kept: .*outcome unknown/) });
      expect(final?.data.retired).toBeUndefined();
      expect(await room('acct', 1)).toBe(8);
      await redecideAndComplete(p, job);
      await expectResentOnce(id, venue.received, executed);
    });
  }

  it('a failed job removed (by an operator) while its record lives: a new decision adds a job that sends what a retry would', async () => {
    const id = jobIdFor('deleverage', 'acct', 1);
    const executed = new Set<string>();
    const venue = await httpVenue((r, n, _req, res) => {
      executed.add(r.key);
      if (n === 0) return void res.writeHead(503).end('oops');
      answerChecked(r, venue.received, res);
    });
    const p = start(venue.url, 1);
    const job = sampleJob('acct', 1);
    await p.enqueue(job);
    await finalFailure();
    const [failed] = await p.queues.deleverage.getFailed();
    await failed?.remove();
    expect(await p.queues.deleverage.getJob(id)).toBeUndefined();
    // decided again at a later mark: a new job (the new payload), which reads the job's execution record
    const again = { ...job, decidedAt: DECIDED_AT + 60_000 };
    expect(await p.enqueue(again)).toMatchObject({ created: true, retried: false });
    await eventually(
      () => p.queues.deleverage.getJobCounts('completed'),
      (c) => c.completed === 1,
      'the new job to complete',
    );
    // the 503'd send may have executed: sent again as it was, under its key, never a second order
    await expectResentOnce(id, venue.received, executed);
  });

  it("the final audit names a retired generation only if it kept a request; the generation's share is given back", async () => {
    const id = jobIdFor('deleverage', 'acct', 1);
    const venue = await httpVenue((r, n, _req, res) => {
      if (r.key === id && n === 0) return void res.writeHead(429).end('slow down');
      answerChecked(r, venue.received, res);
    });
    const p = start(venue.url, 1);
    const job = sampleJob('acct', 1);
    await p.enqueue(job);
    expect((await finalFailure())?.data).toMatchObject({ retired: { key: id, next: `${id}#g1` } });
    // run again, generation 1 fails before it keeps a request (its market inputs cannot be read)
    await redis.set(keys.market, 'not a hash');
    expect(await p.enqueue(job)).toMatchObject({ retried: true });
    const finals = await eventually(
      async () => (await auditTrail()).filter((e) => e.kind === 'failure' && e.data.attempts !== undefined),
      (f) => f.length === 2,
      'the second final failure',
    );
    expect(finals[1]?.data).toMatchObject({
      reason: expect.stringMatching(/WRONGTYPE/),
      reservation: 'released',
    });
    expect(finals[1]?.data.retired).toBeUndefined();
    expect(await room('acct', 1)).toBe(10);
    expect(venue.received.map((r) => r.key)).toEqual([id]);
  });

  it('a final failure whose audit cannot be written is logged at error level', async () => {
    const venue = await httpVenue((_r, _n, _req, res) => void res.writeHead(429).end('slow down'));
    const { log, lines } = capturedLog();
    producer = new ActionProducer(redis, keys, { attempts: 1, backoffMs: 5 });
    running = startExecutionWorkers({ ...depsOf(venue.url), log });
    await redis.set(keys.audit, 'not a stream');
    await producer.enqueue(sampleJob('acct', 1));
    const logged = await eventually(
      () => lines.filter((l) => l.msg === 'the final failure audit was not written'),
      (l) => l.length === 1,
      'the error log line',
    );
    expect(logged[0]).toMatchObject({
      level: 50,
      jobId: jobIdFor('deleverage', 'acct', 1),
      reservation: 'released',
      err: expect.stringMatching(/WRONGTYPE/),
    });
  });
});

/** A venue whose executions fail as `outcomes` says, one per call (then it executes), counting calls. */
class ScriptedVenue implements ExecutionVenue {
  readonly name = 'scripted';
  readonly calls: string[] = [];
  constructor(private readonly outcomes: (() => Error)[]) {}
  async execute(req: ExecutionRequest): Promise<ExecutionResult> {
    this.calls.push(req.idempotencyKey);
    const next = this.outcomes.shift();
    if (next) throw next();
    return { venue: this.name, fills: [] };
  }
  async setReduceOnly(): Promise<never> {
    throw new Error('not used');
  }
}

describe('execution-record writes whose reply is lost (the client resends them after reconnecting)', () => {
  /** Execution records on a 'wait' client through a proxy that can lose a reply. */
  async function lossyRecords() {
    const proxy = await lossyRedisProxy(redisUrl());
    const client = createRedis(proxy.url, 'wait');
    await client.connect();
    cleanups.push(
      () => proxy.close(),
      () => client.disconnect(),
    );
    return { proxy, records: new ExecutionRecords(client, keys) };
  }

  it('a send counted, then marked not executed, each applied twice by Redis, counts once', async () => {
    const { proxy, records } = await lossyRecords();
    const req = { orders: [] };
    await records.keep('j', 0, req, null);
    proxy.arm('sentAt');
    const n = await records.sending('j', 0);
    proxy.arm('notExecuted');
    await records.notExecuted('j', n, 'refused');
    expect(proxy.lost).toBe(2);
    const rec = await records.get('j');
    expect(rec).toMatchObject({ sends: 1, notExecuted: 1 });
    // another send, possibly executed: the record says so
    await records.sending('j', 0);
    expect(await records.get('j')).toMatchObject({ sends: 2, notExecuted: 1 });
  });

  it('a job whose one possibly executed send is followed by a not-executed one, marked twice by Redis, keeps its reservation', async () => {
    const { proxy, records } = await lossyRecords();
    // attempt 1: the venue fails in a way that does not say it did not execute; attempt 2: nothing sent
    const venue = new ScriptedVenue([
      () => new Error('venue bug after placing the order'),
      () => new VenueUnavailableError('connection refused'),
    ]);
    producer = new ActionProducer(redis, keys, { attempts: 2, backoffMs: 5 });
    running = startExecutionWorkers(workerDeps({ conn, redis, keys }, venue, records));
    await redis.sadd(keys.instruments, 'BTC-PERP');
    const id = jobIdFor('deleverage', 'acct', 1);
    proxy.arm('notExecuted');
    await producer.enqueue(sampleJob('acct', 1));
    const final = await finalFailure();
    expect(proxy.lost).toBe(1);
    expect(venue.calls).toEqual([id, id]);
    expect(await new ExecutionRecords(redis, keys).get(id)).toMatchObject({ sends: 2, notExecuted: 1 });
    expect(final?.data).toMatchObject({ reservation: expect.stringMatching(/^kept: a request was sent/) });
    expect(final?.data.retired).toBeUndefined();
    expect(await room('acct', 1)).toBe(8);
  });

  it("a job's retirement applied twice by Redis retires one generation", async () => {
    const { proxy, records } = await lossyRecords();
    const id = jobIdFor('deleverage', 'acct', 1);
    const venue = await httpVenue((r, n, _req, res) => {
      if (r.key === id && n === 0) return void res.writeHead(429).end('slow down');
      answerChecked(r, venue.received, res);
    });
    const p = start(venue.url, 1, records);
    proxy.arm('retiredAt');
    const job = sampleJob('acct', 1);
    await p.enqueue(job);
    const final = await finalFailure();
    expect(proxy.lost).toBe(1);
    expect(final?.data).toMatchObject({ reservation: 'released', retired: { key: id, next: `${id}#g1` } });
    expect((await new ExecutionRecords(redis, keys).get(id)).gen).toBe(1);
    await redecideAndComplete(p, job);
    expect(venue.received.map((r) => r.key)).toEqual([id, `${id}#g1`]);
  });
});
