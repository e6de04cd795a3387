/**
 * The execution workers: one BullMQ Worker per queue, each job validated (an invalid payload fails at
 * once with UnrecoverableError), executed at the venue under its job id as idempotency key, its fills
 * recorded back into the event log (ids derived from the job, so a retry never records twice) and the
 * action audited. Transient venue errors are retried with exponential backoff; stalled jobs (a worker
 * died mid-job) are picked up again by BullMQ's stalled-job checker. Workers wait for Redis when it is down.
 * `restrict` jobs set or lift an account's reduce-only restriction at the venue, newest version only: a job
 * older than the evaluator's latest change for the account, or than the last version applied, is skipped
 * as superseded (and the venue ignores older versions itself, for the race between two workers).
 */
import { hostname } from 'node:os';
import { type RedisOptions as BullRedisOptions, type Job, UnrecoverableError, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { CanonicalEvent } from '../../events/schema.js';
import { parseEvent } from '../../events/validate.js';
import type { ServiceMetrics } from '../metrics.js';
import type { AuditLog } from '../state/audit.js';
import { appendEvents } from '../state/event-log.js';
import type { Keyspace } from '../state/keys.js';
import { readMarket } from '../state/market.js';
import { Reservations } from '../state/reservations.js';
import type { RestrictionStore } from '../state/restrictions.js';
import type { RiskStore } from '../state/risk-store.js';
import { type ExecutionVenue, VenueRejectedError } from '../venue/types.js';
import {
  type ExecutionJob,
  ExecutionJobSchema,
  execEventId,
  jobIdFor,
  orderIdFor,
  QUEUES,
  type QueueKind,
  type RestrictJob,
  RestrictJobSchema,
} from './job.js';

export interface WorkerDeps {
  /**
   * a waiting ('wait' role) connection: the workers take its options (address, credentials, reconnection
   * policy) and open their own clients from them, see `workerConnectionOptions`; it need not be connected
   */
  connection: Redis;
  /** for recording fills and audit entries */
  redis: Redis;
  keys: Keyspace;
  /** the evaluators' latest views: a job older than the account's current epoch is stale */
  store: RiskStore;
  /** the evaluators' restriction records and the versions applied at the venue */
  restrictions: RestrictionStore;
  venue: ExecutionVenue;
  audit: AuditLog;
  metrics: ServiceMetrics;
  log: Logger;
  concurrency: number;
  dedupTtlMs: number;
  /** BullMQ lock and stalled-check settings (ms); defaults are BullMQ's */
  lockDurationMs?: number;
  stalledIntervalMs?: number;
}

export interface JobOutcome {
  /** why nothing was executed (stale decision, position already closed by another job of the epoch) */
  skipped?: string;
  venue: string;
  fills: number;
  /** USD */
  notional: number;
  reference?: string;
}

function invalid(error: { issues: { path: PropertyKey[]; message: string }[] }): UnrecoverableError {
  const issue = error.issues[0];
  return new UnrecoverableError(
    `invalid job payload: ${issue?.path.map(String).join('.') || '(root)'}: ${issue?.message ?? 'invalid'}`,
  );
}

export interface RestrictOutcome {
  /** why nothing was sent (a newer restriction version exists) */
  skipped?: string;
  venue: string;
  reduceOnly: boolean;
  version: number;
  /** the venue changed state (false: it had this or a newer version already) */
  applied: boolean;
  reference?: string;
}

/** The `restrict` processor: validate, skip if superseded, tell the venue, record the applied version. */
export function makeRestrictProcessor(deps: WorkerDeps) {
  return async (job: Job): Promise<RestrictOutcome> => {
    const parsed = RestrictJobSchema.safeParse(job.data);
    if (!parsed.success) throw invalid(parsed.error);
    const data: RestrictJob = parsed.data;
    const expectedId = jobIdFor('restrict', data.account, data.version);
    if (job.id !== expectedId)
      throw new UnrecoverableError(`job id ${job.id} does not match its payload (${expectedId})`);
    const state = data.reduceOnly ? 'on' : 'off';
    const base = { venue: deps.venue.name, reduceOnly: data.reduceOnly, version: data.version };
    const [latest, applied] = await Promise.all([
      deps.restrictions.get(data.account),
      deps.restrictions.applied(data.account),
    ]);
    const newer = Math.max(latest?.version ?? 0, applied);
    if (newer > data.version) {
      const why = `superseded: restriction version ${newer} > ${data.version}`;
      deps.metrics.restrictions.inc({ state, outcome: 'superseded' });
      await deps.audit.append('execution', data.account, expectedId, {
        kind: 'restrict',
        reduceOnly: data.reduceOnly,
        version: data.version,
        skipped: why,
      });
      return { ...base, skipped: why, applied: false };
    }
    let result: Awaited<ReturnType<ExecutionVenue['setReduceOnly']>>;
    try {
      result = await deps.venue.setReduceOnly({
        idempotencyKey: expectedId,
        account: data.account,
        reduceOnly: data.reduceOnly,
        version: data.version,
        epoch: data.epoch,
        decidedAt: data.decidedAt,
        reason: data.reason,
      });
    } catch (e) {
      if (e instanceof VenueRejectedError) throw new UnrecoverableError(e.message);
      throw e;
    }
    await deps.restrictions.markApplied(data.account, data.version);
    deps.metrics.restrictions.inc({ state, outcome: 'applied' });
    await deps.audit.append('execution', data.account, expectedId, {
      kind: 'restrict',
      attempt: job.attemptsMade + 1,
      worker: WORKER_ID,
      venue: result.venue,
      reference: result.reference ?? null,
      reduceOnly: data.reduceOnly,
      version: data.version,
      epoch: data.epoch,
      decidedAt: data.decidedAt,
      reason: data.reason,
      venueApplied: result.applied,
    });
    const out: RestrictOutcome = { ...base, applied: result.applied };
    if (result.reference) out.reference = result.reference;
    return out;
  };
}

/** The processor, exported so tests can drive it without a queue. */
export function makeProcessor(deps: WorkerDeps) {
  return async (job: Job): Promise<JobOutcome> => {
    const parsed = ExecutionJobSchema.safeParse(job.data);
    if (!parsed.success) throw invalid(parsed.error);
    const data: ExecutionJob = parsed.data;
    const expectedId = jobIdFor(data.kind, data.account, data.epoch);
    if (job.id !== expectedId)
      throw new UnrecoverableError(`job id ${job.id} does not match its payload (${expectedId})`);
    const current = (await deps.store.get(data.account))?.epoch;
    if (current !== undefined && current > data.epoch)
      return skip(
        deps,
        data,
        expectedId,
        `stale: the position changed since (epoch ${current} > ${data.epoch})`,
      );
    const grants = await new Reservations(deps.redis, deps.keys).reserve(
      data.account,
      data.epoch,
      expectedId,
      data.orders.map((o) => ({ symbol: o.symbol, qty: o.qty, cap: Math.abs(o.positionQty) })),
    );
    const orders = data.orders
      .map((o, i) => ({ symbol: o.symbol, side: o.side, qty: grants[i] ?? 0 }))
      .filter((o) => o.qty > MIN_QTY);
    if (orders.length === 0)
      return skip(deps, data, expectedId, 'the position of this epoch is already closed by another job');
    const symbols = [...new Set(orders.map((o) => o.symbol))];
    const latest = await readMarket(deps.redis, deps.keys, symbols);
    const market = { ...data.market };
    let eventTime = data.decidedAt;
    for (const [s, m] of Object.entries(latest)) {
      market[s] = m.input;
      eventTime = Math.max(eventTime, m.ts);
    }
    let result: Awaited<ReturnType<ExecutionVenue['execute']>>;
    try {
      result = await deps.venue.execute({
        idempotencyKey: expectedId,
        kind: data.kind,
        account: data.account,
        orders,
        decidedAt: eventTime,
        market,
      });
    } catch (e) {
      if (e instanceof VenueRejectedError) throw new UnrecoverableError(e.message);
      throw e;
    }
    const events: CanonicalEvent[] = result.fills.map((f, i) => {
      const raw =
        data.kind === 'liquidate'
          ? {
              type: 'liquidation',
              id: execEventId(expectedId, i),
              ts: f.ts,
              account: data.account,
              symbol: f.symbol,
              side: f.side,
              qty: f.qty,
              price: f.price,
              fee: Math.max(0, f.fee),
            }
          : {
              type: 'fill',
              id: execEventId(expectedId, i),
              ts: f.ts,
              account: data.account,
              symbol: f.symbol,
              side: f.side,
              qty: f.qty,
              price: f.price,
              fee: f.fee,
              liquidity: 'taker',
              orderId: orderIdFor(expectedId),
            };
      const ev = parseEvent(raw);
      if (!ev.ok)
        throw new UnrecoverableError(`venue fill ${i} is not a valid event: ${ev.field}: ${ev.reason}`);
      return ev.event;
    });
    await appendEvents(deps.redis, deps.keys, events, { dedupTtlMs: deps.dedupTtlMs, partial: true });
    const notional = result.fills.reduce(
      (s, f) => s + f.qty * f.price * (market[f.symbol]?.contractSize ?? 1),
      0,
    );
    await deps.audit.append('execution', data.account, expectedId, {
      kind: data.kind,
      epoch: data.epoch,
      attempt: job.attemptsMade + 1,
      worker: WORKER_ID,
      venue: result.venue,
      reference: result.reference ?? null,
      orders: data.orders,
      granted: orders,
      fills: result.fills,
      notional,
      before: { equity: data.decision.equity, mm: data.decision.mm, marginRatio: data.decision.marginRatio },
      estimatedAfter: { equity: data.decision.equityAfter, mm: data.decision.mmAfter },
    });
    const out: JobOutcome = { venue: result.venue, fills: result.fills.length, notional };
    if (result.reference) out.reference = result.reference;
    return out;
  };
}

/** which process executed a job (audited) */
const WORKER_ID = `${hostname()}:${process.pid}`;

/** contracts: grants below this are float dust, not an order */
const MIN_QTY = 1e-9;

async function skip(deps: WorkerDeps, data: ExecutionJob, jobId: string, why: string): Promise<JobOutcome> {
  await deps.audit.append('execution', data.account, jobId, {
    kind: data.kind,
    epoch: data.epoch,
    skipped: why,
    orders: data.orders,
  });
  return { skipped: why, venue: deps.venue.name, fills: 0, notional: 0 };
}

export interface ExecutionWorkers {
  workers: Record<QueueKind, Worker>;
  close(): Promise<void>;
}

/**
 * The options BullMQ opens a worker's clients with. Not the instance itself: a blocking worker never uses
 * the instance it is given, it duplicates it, and a duplicate of a `lazyConnect` client is created idle; BullMQ
 * then calls `connect()` on it once, and if Redis is down at that moment the promise it waits on rejects for
 * good and the worker never starts, even after Redis comes back. From options with `lazyConnect: false` every
 * client connects at once and keeps retrying (our `retryStrategy`), and BullMQ waits for its `ready`.
 */
export function workerConnectionOptions(connection: Redis): BullRedisOptions {
  const { retryStrategy, ...rest } = connection.options;
  return {
    ...rest,
    ...(retryStrategy ? { retryStrategy } : {}),
    lazyConnect: false,
    maxRetriesPerRequest: null,
  };
}

/** ms: how soon an execution worker retries its main loop after a Redis error */
export const WORKER_RUN_RETRY_DELAY_MS = 2_000;

export function startExecutionWorkers(deps: WorkerDeps): ExecutionWorkers {
  const processor = makeProcessor(deps);
  const restrict = makeRestrictProcessor(deps);
  const make = (kind: QueueKind, concurrency: number): Worker => {
    const started = new Map<string, number>();
    const opts = {
      connection: workerConnectionOptions(deps.connection),
      prefix: deps.keys.bull,
      concurrency,
      ...(deps.lockDurationMs ? { lockDuration: deps.lockDurationMs } : {}),
      ...(deps.stalledIntervalMs ? { stalledInterval: deps.stalledIntervalMs } : {}),
      maxStalledCount: 3,
      // ms: after a Redis error in its main loop (Redis down) a worker tries again this soon, not BullMQ's
      // default 15 s, so deleveraging resumes within seconds of Redis coming back
      runRetryDelay: WORKER_RUN_RETRY_DELAY_MS,
    };
    const w = new Worker(QUEUES[kind], kind === 'restrict' ? restrict : processor, opts);
    w.on('active', (job) => started.set(job.id ?? '', performance.now()));
    const elapsed = (job: Job | undefined): number => {
      const t0 = started.get(job?.id ?? '');
      started.delete(job?.id ?? '');
      return t0 === undefined ? 0 : (performance.now() - t0) / 1000;
    };
    w.on('completed', (job) => {
      deps.metrics.jobDuration.observe({ queue: kind, outcome: 'completed' }, elapsed(job));
    });
    w.on('failed', (job, err) => {
      const final = !job || err instanceof UnrecoverableError || job.attemptsMade >= (job.opts.attempts ?? 1);
      deps.metrics.jobDuration.observe({ queue: kind, outcome: 'failed' }, elapsed(job));
      deps.metrics.jobsFailed.inc({ queue: kind, final: String(final) });
      deps.log.warn(
        { queue: kind, jobId: job?.id, attempt: job?.attemptsMade, final, reason: err.message },
        'job failed',
      );
      if (final && job) {
        const data = job.data as Partial<ExecutionJob>;
        if (typeof data.account === 'string' && typeof data.epoch === 'number' && Array.isArray(data.orders))
          void new Reservations(deps.redis, deps.keys)
            .release(
              data.account,
              data.epoch,
              job.id ?? '',
              data.orders.map((o) => String(o.symbol)),
            )
            .catch(() => {});
        void deps.audit
          .append('failure', String(data.account ?? ''), job.id ?? '', {
            kind,
            attempts: job.attemptsMade,
            reason: err.message,
          })
          .catch(() => {});
      }
    });
    w.on('stalled', (jobId) => deps.log.warn({ queue: kind, jobId }, 'stalled job recovered'));
    w.on('error', (err) => deps.log.error({ queue: kind, err: err.message }, 'worker error'));
    return w;
  };
  // liquidations get their own worker and at least as much concurrency: they never wait behind reductions
  // restrictions: one at a time per process, in enqueue order (versions keep them right across processes)
  const workers = {
    liquidate: make('liquidate', Math.max(1, deps.concurrency)),
    deleverage: make('deleverage', Math.max(1, Math.ceil(deps.concurrency / 2))),
    restrict: make('restrict', 1),
  };
  return {
    workers,
    async close() {
      await Promise.all(Object.values(workers).map((w) => w.close()));
    },
  };
}
