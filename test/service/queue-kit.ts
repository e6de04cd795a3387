import { Writable } from 'node:stream';
import type { Redis } from 'ioredis';
import { type Logger, pino } from 'pino';
import { createMetrics, type ServiceMetrics } from '../../src/service/metrics.js';
import type { ExecutionRecords } from '../../src/service/queue/execution-record.js';
import type { ExecutionJob } from '../../src/service/queue/job.js';
import type { WorkerDeps } from '../../src/service/queue/worker.js';
import { AuditLog } from '../../src/service/state/audit.js';
import { decodeEntry } from '../../src/service/state/event-log.js';
import type { Keyspace } from '../../src/service/state/keys.js';
import { RestrictionStore } from '../../src/service/state/restrictions.js';
import { RiskStore } from '../../src/service/state/risk-store.js';
import type { ExecutionVenue } from '../../src/service/venue/types.js';
import { silent } from './harness.js';

/** market inputs of BTC-PERP at mark `mark` (USD): a 0.2 USD spread, 50 contracts a side */
export function marketInput(mark: number) {
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

/**
 * A decision to sell 2 of a 10-contract BTC-PERP long at `epoch`: a REDUCE (`deleverage`), or with `kind`
 * `liquidate` the same orders as a LIQUIDATE. `decidedAt` in epoch ms (default 1_700_000_000_000 + epoch).
 */
export function sampleJob(
  account: string,
  epoch: number,
  opts: { kind?: 'liquidate' | 'deleverage'; decidedAt?: number } = {},
): ExecutionJob {
  const kind = opts.kind ?? 'deleverage';
  return {
    kind,
    account,
    epoch,
    decidedAt: opts.decidedAt ?? 1_700_000_000_000 + epoch,
    orders: [{ symbol: 'BTC-PERP', side: 'sell', qty: 2, notional: 200, positionQty: 10 }],
    market: { 'BTC-PERP': marketInput(100) },
    decision: {
      action: kind === 'liquidate' ? 'LIQUIDATE' : 'REDUCE',
      rule: kind === 'liquidate' ? 'equity-below-mm' : 'pd-reduce-tier',
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

/** The execution workers' dependencies on a test's connections and keyspace. */
export function workerDeps(
  t: { conn: Redis; redis: Redis; keys: Keyspace; metrics?: ServiceMetrics },
  venue: ExecutionVenue,
  records?: ExecutionRecords,
): WorkerDeps {
  return {
    ...(records ? { records } : {}),
    connection: t.conn,
    redis: t.redis,
    keys: t.keys,
    store: new RiskStore(t.redis, t.keys, 1, 0.01),
    restrictions: new RestrictionStore(t.redis, t.keys, 1),
    venue,
    audit: new AuditLog(t.redis, t.keys),
    metrics: t.metrics ?? createMetrics(),
    log: silent,
    concurrency: 2,
    dedupTtlMs: 60_000,
  };
}

/** The audit trail, oldest first (the newest 100 entries). */
export async function auditTrail(redis: Redis, keys: Keyspace) {
  return (await new AuditLog(redis, keys).list({ limit: 100 })).items.reverse();
}

/** Every event in the log, decoded, oldest first. */
export async function streamEvents(redis: Redis, keys: Keyspace) {
  return (await redis.xrange(keys.stream, '-', '+')).map(([, f]) => decodeEntry(f));
}

/** A logger (level info) whose lines, parsed, a test reads in `lines`. */
export function capturedLog(): { log: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const log = pino(
    { level: 'info' },
    new Writable({
      write(chunk, _enc, done) {
        lines.push(JSON.parse(String(chunk)) as Record<string, unknown>);
        done();
      },
    }),
  );
  return { log, lines };
}
