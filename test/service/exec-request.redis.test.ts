/**
 * The request sent under an execution job's idempotency key, against a real Redis and a local HTTP venue:
 * every retry sends the first attempt's bytes (even when the market moved in between), nothing is sent
 * when the request cannot be kept, and a venue's redirect is never followed (the job fails for an
 * operator, its reservation kept).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createMetrics } from '../../src/service/metrics.js';
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
import { AuditLog } from '../../src/service/state/audit.js';
import { decodeEntry } from '../../src/service/state/event-log.js';
import { type Keyspace, keyspace } from '../../src/service/state/keys.js';
import { writeMarket } from '../../src/service/state/market.js';
import { createRedis } from '../../src/service/state/redis.js';
import { Reservations } from '../../src/service/state/reservations.js';
import { RestrictionStore } from '../../src/service/state/restrictions.js';
import { RiskStore } from '../../src/service/state/risk-store.js';
import { WebhookVenue } from '../../src/service/venue/webhook.js';
import { connect, deletePrefix, freshPrefix, redisUrl } from '../helpers/redis.js';
import { silent } from './harness.js';
import { eventually } from './wait.js';

/** ms, event time of the sample decision */
const DECIDED_AT = 1_700_000_000_000;
const SECRET = 'a-long-enough-webhook-secret';

function sampleJob(account: string, epoch: number): ExecutionJob {
  return {
    kind: 'deleverage',
    account,
    epoch,
    decidedAt: DECIDED_AT,
    orders: [{ symbol: 'BTC-PERP', side: 'sell', qty: 2, notional: 200, positionQty: 10 }],
    market: { 'BTC-PERP': market(100) },
    decision: {
      action: 'REDUCE',
      rule: 'pd-reduce-tier',
      pd: 0.4,
      equity: 50,
      mm: 20,
      im: 40,
      marginRatio: 2.5,
      equityAfter: 49.5,
      mmAfter: 10,
      reasons: ['test'],
    },
    modelVersion: 'test@1',
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
function market(mark: number) {
  return {
    mark,
    bid: mark - 0.1,
    ask: mark + 0.1,
    bidDepth: 50,
    askDepth: 50,
    contractSize: 1,
    liquidationFeeRate: 0.005,
  };
}

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

function depsOf(url: string): WorkerDeps {
  return {
    connection: conn,
    redis,
    keys,
    store: new RiskStore(redis, keys, 1, 0.01),
    restrictions: new RestrictionStore(redis, keys, 1),
    venue: new WebhookVenue({ url, secret: SECRET, timeoutMs: 5_000 }),
    audit: new AuditLog(redis, keys),
    metrics: createMetrics(),
    log: silent,
    concurrency: 2,
    dedupTtlMs: 60_000,
  };
}

function start(url: string, attempts: number): ActionProducer {
  producer = new ActionProducer(redis, keys, { attempts, backoffMs: 5 });
  running = startExecutionWorkers(depsOf(url));
  return producer;
}

async function auditTrail() {
  return (await new AuditLog(redis, keys).list({ limit: 100 })).items.reverse();
}

async function streamEvents() {
  return (await redis.xrange(keys.stream, '-', '+')).map(([, f]) => decodeEntry(f));
}

/** contracts of BTC-PERP another job of `epoch` could still reserve, out of the position's 10 */
async function room(account: string, epoch: number): Promise<number> {
  const r = new Reservations(redis, keys);
  const [grant] = await r.reserve(account, epoch, 'probe', [{ symbol: 'BTC-PERP', qty: 10, cap: 10 }]);
  await r.release(account, epoch, 'probe', ['BTC-PERP']);
  return grant ?? 0;
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

  it('a failed reduction run again by a new decision sends its first body, and none while its reservation no longer covers it', async () => {
    await moveMarket(100, DECIDED_AT + 1_000);
    // the venue is briefly down (its own 503: not executed) for the first request, as the market moves
    const venue = await httpVenue(async (r, n, _req, res) => {
      if (n === 0) {
        await moveMarket(90, DECIDED_AT + 60_000);
        res.writeHead(503).end('busy');
        return;
      }
      answerChecked(r, venue.received, res);
    });
    const p = start(venue.url, 1);
    const job = sampleJob('acct', 1);
    const id = jobIdFor('deleverage', 'acct', 1);
    const failedOnce = async (count: number) =>
      eventually(
        auditTrail,
        (a) => a.filter((e) => e.kind === 'failure' && e.data.reservation === 'released').length === count,
        `final failure ${count}`,
      );
    await p.enqueue(job);
    await failedOnce(1);
    expect(await room('acct', 1)).toBe(10); // given back: the venue did not execute
    // meanwhile another job of epoch 1 reserves 9 of the 10 contracts: the 2 first sent are not covered
    const other = new Reservations(redis, keys);
    expect(await other.reserve('acct', 1, 'other', [{ symbol: 'BTC-PERP', qty: 9, cap: 10 }])).toEqual([9]);
    expect(await p.enqueue(job)).toMatchObject({ retried: true });
    await failedOnce(2);
    const [failed] = await p.queues.deleverage.getFailed();
    expect(failed?.failedReason).toMatch(
      /no longer covered by its reservation.*nor changed under the same key/,
    );
    expect(venue.received).toHaveLength(1); // nothing sent: not the first body, nor a smaller one
    expect(await room('acct', 1)).toBe(1); // what the attempt was granted is given back
    // the other job gave its share back: decided again, the job sends its first body
    await other.release('acct', 1, 'other', ['BTC-PERP']);
    expect(await p.enqueue(job)).toMatchObject({ retried: true });
    await eventually(
      () => p.queues.deleverage.getJobCounts('completed'),
      (c) => c.completed === 1,
      'the reduction to complete',
    );
    expect(venue.received.map((r) => r.key)).toEqual([id, id]);
    expect(venue.received[1]?.raw).toBe(venue.received[0]?.raw);
    expect(await streamEvents()).toHaveLength(1);
    expect(await room('acct', 1)).toBe(8);
  });

  it('nothing is sent when the request cannot be kept in Redis', async () => {
    const venue = await httpVenue((r, _n, _req, res) => answerChecked(r, venue.received, res));
    const deps = depsOf(venue.url);
    // a real Redis error on the kept request's key (it holds a hash, not a string)
    const data = sampleJob('k', 1);
    const id = jobIdFor('deleverage', 'k', 1);
    const requestKey = `${prefix}:exec:${id}:request`;
    await redis.hset(requestKey, 'x', '1');
    const job = { id, data, attemptsMade: 0 } as unknown as Job;
    await expect(makeProcessor(deps)(job)).rejects.toThrow(/WRONGTYPE/);
    const restrict = restrictJob('k');
    const restrictKey = `${prefix}:exec:restrict-k-1:request`;
    await redis.hset(restrictKey, 'x', '1');
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
  });
});
