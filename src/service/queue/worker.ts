/**
 * The execution workers: one BullMQ Worker per queue, each job validated (an invalid payload fails at
 * once with UnrecoverableError), executed at the venue under its job id as idempotency key, its fills
 * recorded back into the event log (ids derived from the job, so a retry never records twice) and the
 * action audited (once per job). Transient venue errors are retried with exponential backoff; stalled jobs
 * (a worker died mid-job) are picked up again by BullMQ's stalled-job checker. Workers wait for Redis when
 * it is down. What the venue answered is kept per job (`ExecutionRecords`): once it answered 2xx the job
 * never gives its reservation back and is never skipped as stale; a retry records the kept answer (a
 * failure after the fills were appended still ends in its execution audit). A 2xx that cannot be used is
 * an unknown outcome, retried under the same idempotency key, and so is a request that may have reached the
 * venue without an answer (a timeout, a connection reset after sending): its reservation is kept too. Fills
 * the log cannot take (invalid, or refused by it) fail the job at once for an operator (`NEEDS_OPERATOR`),
 * audited. The request sent under a job's key is built once and kept before it is first sent: every retry
 * sends the same bytes. Each send is counted in the execution record before it is made, and counted again as
 * not executed (once per send) only after a definite non-execution (VenueUnavailableError: nothing sent or a
 * 429; VenueRejectedError: a refusal), so a job whose outcome could not be written (Redis failed after the
 * venue acted) keeps its reservation, and so does one the venue answered 5xx or 408 (an unknown outcome).
 * A job that fails for good with every send definitely not executed retires its generation (atomically with
 * that check) and gives that generation's reservation back: run again by a new decision, it builds a fresh
 * request, sized to what it is granted then, under a new idempotency key (`<jobId>#g<n>`), reserved under that
 * key (taking over the retired generation's share if it is not given back yet). A redirect (3xx) from the
 * venue's endpoint is not followed: the job fails at once for an operator, its reservation kept.
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
import {
  type ExecutionRequest,
  type ExecutionVenue,
  type RestrictionRequest,
  type VenueFill,
  VenueOutcomeUnknownError,
  VenueRedirectError,
  VenueRejectedError,
  VenueUnavailableError,
} from '../venue/types.js';
import {
  type ExecutedAnswer,
  type ExecutionRecord,
  ExecutionRecords,
  GenerationMovedError,
  idempotencyKeyFor,
  mayHaveExecuted,
  retiredKeysBefore,
  type SentRequest,
} from './execution-record.js';
import {
  type ExecutionJob,
  ExecutionJobSchema,
  execEventId,
  jobIdFor,
  NEEDS_OPERATOR,
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
  /** the execution records (default: in `redis`); tests inject one that fails a write */
  records?: ExecutionRecords;
}

const recordsOf = (deps: WorkerDeps): ExecutionRecords =>
  deps.records ?? new ExecutionRecords(deps.redis, deps.keys);

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
  const records = recordsOf(deps);
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
    const built: RestrictionRequest = {
      idempotencyKey: expectedId,
      account: data.account,
      reduceOnly: data.reduceOnly,
      version: data.version,
      epoch: data.epoch,
      decidedAt: data.decidedAt,
      reason: data.reason,
    };
    // kept before it is first sent; every retry sends the kept bytes (nothing is sent if it cannot be kept)
    const { kept } = await records.keep(expectedId, 0, built, deps.venue.restrictionBody?.(built) ?? null);
    const req = kept.request;
    if (req.account !== data.account || req.version !== data.version || req.reduceOnly !== data.reduceOnly)
      throw new UnrecoverableError(
        `the request kept for ${expectedId} is for ${req.account} version ${req.version}, not this job's: nothing sent`,
      );
    let result: Awaited<ReturnType<ExecutionVenue['setReduceOnly']>>;
    try {
      result = await deps.venue.setReduceOnly(req, kept.body ?? undefined);
    } catch (e) {
      if (e instanceof VenueRejectedError) throw new UnrecoverableError(e.message);
      // a misconfigured venue URL: for an operator, not retried (nor by a later decision)
      if (e instanceof VenueRedirectError) {
        await deps.audit
          .append('failure', data.account, expectedId, {
            kind: 'restrict',
            version: data.version,
            attempt: job.attemptsMade + 1,
            outcome: 'needs-operator',
            reason: e.message,
            status: e.status,
            location: auditedLocation(e.location),
          })
          .catch((w: unknown) =>
            deps.log.error({ jobId: expectedId, err: (w as Error).message }, 'redirect audit not written'),
          );
        throw new UnrecoverableError(`${NEEDS_OPERATOR}${e.message}`);
      }
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
  const records = recordsOf(deps);
  return async (job: Job): Promise<JobOutcome> => {
    const parsed = ExecutionJobSchema.safeParse(job.data);
    if (!parsed.success) throw invalid(parsed.error);
    const data: ExecutionJob = parsed.data;
    const expectedId = jobIdFor(data.kind, data.account, data.epoch);
    if (job.id !== expectedId)
      throw new UnrecoverableError(`job id ${job.id} does not match its payload (${expectedId})`);
    const attempt = job.attemptsMade + 1;
    // an earlier attempt the venue answered 2xx: record that execution, never skip nor release it (the
    // record and the request kept for the job, read together; reading renews their expiry)
    const prior = await records.get(expectedId);
    let answer = prior.answer;
    if (!answer) {
      const r = await execute(deps, records, data, expectedId, attempt, prior);
      if ('skipped' in r) return r.skipped;
      answer = r.answer;
    }
    const recorded = answer.fills.map((f, i) => recordedFill(data, expectedId, f, i));
    const bad = recorded.findIndex((r) => !r.ok);
    if (bad >= 0) {
      const r = recorded[bad] as Extract<RecordedFill, { ok: false }>;
      throw await needsOperator(
        deps,
        data,
        expectedId,
        attempt,
        answer,
        `venue fill ${bad} is not a valid event: ${r.why}`,
      );
    }
    const events = recorded.map((r) => (r as Extract<RecordedFill, { ok: true }>).event);
    if (!prior.recorded) {
      const res = await appendEvents(deps.redis, deps.keys, events, {
        dedupTtlMs: deps.dedupTtlMs,
        partial: true,
      });
      // appended now, or by an earlier attempt (a duplicate id): anything else is a fill the log refused
      const statuses = res.ok ? res.statuses.map((x) => x.kind) : events.map(() => 'undeclared' as const);
      const refused = statuses.flatMap((st, i) => (st === 'appended' || st === 'duplicate' ? [] : [i]));
      if (refused.length > 0) {
        const what = refused.map((i) => `fill ${i} (${events[i]?.symbol ?? '?'}): ${statuses[i]}`).join(', ');
        throw await needsOperator(
          deps,
          data,
          expectedId,
          attempt,
          answer,
          `the event log refused ${what}`,
          statuses,
        );
      }
      await records.markRecorded(expectedId);
    }
    // USD
    const notional = answer.fills.reduce(
      (s, f) => s + f.qty * f.price * (answer.contractSize[f.symbol] ?? 1),
      0,
    );
    // the fills as recorded in the log; where that differs from the venue's report, both (money trail)
    const fills = events.map((ev) => fillOf(ev));
    const feeAdjusted = answer.fills.flatMap((f, i) =>
      f.fee === fills[i]?.fee
        ? []
        : [
            {
              fill: i,
              venueFee: f.fee,
              recordedFee: fills[i]?.fee,
              why: 'a liquidation penalty is >= 0: recorded as 0',
            },
          ],
    );
    await deps.audit.appendOnce(`execution:${expectedId}`, 'execution', data.account, expectedId, {
      kind: data.kind,
      epoch: data.epoch,
      attempt,
      worker: WORKER_ID,
      venue: answer.venue,
      reference: answer.reference ?? null,
      // the key the venue executed under: the job id, or `<jobId>#g<n>` after a retired request
      idempotencyKey: answer.idempotencyKey ?? expectedId,
      orders: data.orders,
      granted: answer.granted,
      fills,
      ...(feeAdjusted.length > 0 ? { feeAdjusted } : {}),
      notional,
      ...(prior.answer ? { recoveredFrom: 'an earlier attempt the venue answered' } : {}),
      before: {
        equity: data.decision.equity,
        mm: data.decision.mm,
        marginRatio: data.decision.marginRatio,
      },
      estimatedAfter: { equity: data.decision.equityAfter, mm: data.decision.mmAfter },
    });
    const out: JobOutcome = { venue: answer.venue, fills: answer.fills.length, notional };
    if (answer.reference) out.reference = answer.reference;
    return out;
  };
}

/**
 * Reserve, keep the request, count the send, then send it; the answer is kept before anything else is
 * written. Skipped when the decision is stale or the position of its epoch is already closed, unless the
 * venue may have executed something sent for the job before (answered, or a send whose outcome is not
 * known to be a non-execution: asked again under the same idempotency key, with the same reservation).
 * The request (orders, event time, market inputs, the venue's body) is built once per generation and kept
 * before it is first sent; every later attempt sends the kept one as it is, so the venue never sees two
 * bodies under one key. If it cannot be kept, or the send cannot be counted first, nothing is sent (the
 * attempt fails and is retried).
 */
async function execute(
  deps: WorkerDeps,
  records: ExecutionRecords,
  data: ExecutionJob,
  jobId: string,
  attempt: number,
  prior: ExecutionRecord,
): Promise<{ answer: ExecutedAnswer } | { skipped: JobOutcome }> {
  const mayHave = mayHaveExecuted(prior);
  if (!mayHave) {
    const current = (await deps.store.get(data.account))?.epoch;
    if (current !== undefined && current > data.epoch)
      return {
        skipped: await skip(
          deps,
          data,
          jobId,
          `stale: the position changed since (epoch ${current} > ${data.epoch})`,
        ),
      };
  }
  const kept = prior.kept as SentRequest<ExecutionRequest> | undefined;
  const ready = kept
    ? await reserveKept(deps, records, data, jobId, attempt, kept, prior)
    : await buildRequest(deps, records, data, jobId, prior.gen);
  if ('skipped' in ready) return ready;
  const { request, body, gen } = ready;
  // from here the venue may execute it: counted first, so that an outcome that cannot be written (Redis
  // failing after the venue acted) still keeps the reservation; nothing is sent if this fails
  const sendNo = await records
    .sending(jobId, gen)
    .catch((e: unknown) => releaseIfRetired(deps, data, jobId, gen, e));
  let result: Awaited<ReturnType<ExecutionVenue['execute']>>;
  try {
    result = await deps.venue.execute(request, body);
  } catch (e) {
    if (e instanceof VenueOutcomeUnknownError) {
      // the venue took the request, or may have (sent, and no answer, or a 5xx/408): keep the reservation,
      // and retry (the venue answers the same execution)
      if (e.answered) await records.answeredUnknown(jobId, e.message);
      else await records.sentUnanswered(jobId, e.message);
      await deps.audit.append('failure', data.account, jobId, {
        kind: data.kind,
        epoch: data.epoch,
        attempt,
        outcome: 'unknown',
        reason: e.message,
        granted: request.orders,
        reservation: e.answered ? KEPT_ANSWERED : KEPT_UNANSWERED,
      });
      throw e;
    }
    if (e instanceof VenueRedirectError) {
      // a misconfigured venue URL: not retried (the same key would get the same redirect), not retried by a
      // later decision either (NEEDS_OPERATOR). The reservation is kept, not released as after a refusal: a
      // refusal says the venue did not execute, a redirect does not (a 303 is how an endpoint commonly
      // answers a POST it has processed), so the position may be reduced already, as after an unknown
      // outcome; releasing it could let another job of the epoch close that share again.
      await records.redirected(jobId, e.message);
      await deps.audit.append('failure', data.account, jobId, {
        kind: data.kind,
        epoch: data.epoch,
        attempt,
        outcome: 'needs-operator',
        reason: e.message,
        status: e.status,
        location: auditedLocation(e.location),
        granted: request.orders,
        reservation: KEPT_REDIRECTED,
      });
      throw new UnrecoverableError(`${NEEDS_OPERATOR}${e.message}`);
    }
    if (e instanceof VenueUnavailableError || e instanceof VenueRejectedError) {
      // the venue did not execute this send: recorded, so that a job failing for good with nothing else
      // possibly executed gives its reservation back. If that cannot be written the send stays counted as
      // possibly executed: the reservation is kept (the safe side), and the audit says why.
      await records.notExecuted(jobId, sendNo, e.message).catch(async (w: unknown) => {
        const why = (w as Error).message;
        deps.log.error({ jobId, err: why }, 'a definite non-execution could not be recorded');
        await deps.audit
          .append('failure', data.account, jobId, {
            kind: data.kind,
            epoch: data.epoch,
            attempt,
            outcome: e instanceof VenueRejectedError ? 'refused' : 'unavailable',
            reason: e.message,
            granted: request.orders,
            reservation: `${KEPT_SENT_UNRECORDED}: ${why}`.slice(0, 500),
          })
          .catch(() => {});
      });
      if (e instanceof VenueRejectedError && !mayHave) throw new UnrecoverableError(e.message);
    }
    // anything else (a venue's own bug, say) is not known not to have executed: counted as possibly sent
    throw e;
  }
  const contractSize: Record<string, number> = {};
  for (const s of new Set(request.orders.map((o) => o.symbol)))
    contractSize[s] = request.market[s]?.contractSize ?? 1;
  const answer: ExecutedAnswer = {
    venue: result.venue,
    fills: result.fills,
    granted: request.orders,
    eventTime: request.decidedAt,
    contractSize,
    idempotencyKey: request.idempotencyKey,
  };
  if (result.reference) answer.reference = result.reference;
  await records.answeredWith(jobId, answer);
  return { answer };
}

/**
 * `e` came from keeping or counting a request of generation `gen`: if that generation was retired meanwhile
 * (GenerationMovedError, the job is at a later one), nothing under it executed, and what this attempt
 * reserved under its key is given back (best effort: the job's next generation takes it over when it
 * reserves). Always rethrows `e`.
 */
async function releaseIfRetired(
  deps: WorkerDeps,
  data: ExecutionJob,
  jobId: string,
  gen: number,
  e: unknown,
): Promise<never> {
  if (e instanceof GenerationMovedError && e.current > gen) {
    const key = idempotencyKeyFor(jobId, gen);
    await new Reservations(deps.redis, deps.keys)
      .release(
        data.account,
        data.epoch,
        key,
        data.orders.map((o) => o.symbol),
      )
      .catch((w: unknown) =>
        deps.log.warn(
          { jobId, key, err: (w as Error).message },
          'the reservation of a retired generation was not given back (the next generation takes it over)',
        ),
      );
  }
  throw e;
}

type Ready =
  | { request: ExecutionRequest; body: string | undefined /** its generation */; gen: number }
  | { skipped: JobOutcome };

/**
 * The first attempt of a generation: reserve, build the request from the latest market inputs and keep it
 * (with the venue's body for it) before anything is sent, under the generation's idempotency key.
 */
async function buildRequest(
  deps: WorkerDeps,
  records: ExecutionRecords,
  data: ExecutionJob,
  jobId: string,
  gen: number,
): Promise<Ready> {
  // under this generation's key, taking over what the job's retired generations still hold
  const grants = await new Reservations(deps.redis, deps.keys).reserve(
    data.account,
    data.epoch,
    idempotencyKeyFor(jobId, gen),
    data.orders.map((o) => ({ symbol: o.symbol, qty: o.qty, cap: Math.abs(o.positionQty) })),
    retiredKeysBefore(jobId, gen),
  );
  const orders = data.orders
    .map((o, i) => ({ symbol: o.symbol, side: o.side, qty: grants[i] ?? 0 }))
    .filter((o) => o.qty > MIN_QTY);
  if (orders.length === 0)
    return {
      skipped: await skip(deps, data, jobId, 'the position of this epoch is already closed by another job'),
    };
  const symbols = [...new Set(orders.map((o) => o.symbol))];
  const latest = await readMarket(deps.redis, deps.keys, symbols);
  const market = { ...data.market };
  let eventTime = data.decidedAt; // ms
  for (const [s, m] of Object.entries(latest)) {
    market[s] = m.input;
    eventTime = Math.max(eventTime, m.ts);
  }
  const built: ExecutionRequest = {
    idempotencyKey: idempotencyKeyFor(jobId, gen),
    kind: data.kind,
    account: data.account,
    orders,
    decidedAt: eventTime,
    market,
  };
  const { kept, mine } = await records
    .keep(jobId, gen, built, deps.venue.executionBody?.(built) ?? null)
    .catch((e: unknown) => releaseIfRetired(deps, data, jobId, gen, e));
  if (!mine) {
    // an attempt running concurrently (a stalled job picked up twice) kept its request first: sent only if
    // it is this job's and within what this attempt holds (one reservation per job, so normally the same)
    const mismatch = keptMismatch(data, idempotencyKeyFor(jobId, gen), kept.request);
    if (mismatch) throw new UnrecoverableError(`the request kept for ${jobId} ${mismatch}: nothing sent`);
    const short = uncovered(kept.request, data, grants);
    if (short.length > 0)
      throw new Error(
        `the request another attempt kept for ${kept.request.idempotencyKey} is not covered by this job's reservation (contracts granted < kept: ${short.join(', ')}): not sent`,
      );
  }
  return { request: kept.request, body: kept.body ?? undefined, gen };
}

/** `symbol granted < ordered` for each order of `req` its grant (in the order of `data.orders`) does not cover. */
function uncovered(req: ExecutionRequest, data: ExecutionJob, grants: number[]): string[] {
  return req.orders.flatMap((o) => {
    const i = data.orders.findIndex((d) => d.symbol === o.symbol);
    const g = grants[i] ?? 0;
    return g + MIN_QTY < o.qty ? [`${o.symbol} ${g} < ${o.qty}`] : [];
  });
}

/**
 * A later attempt: the kept request is sent again as it is, under the reservation of exactly its orders.
 * The reservation (under the request's key) is held from the first grant until the job fails for good with
 * nothing possibly executed, and that same step retires the kept request first, so a kept request is
 * normally covered. If it is not (its reservation expired, or two copies of the attempt raced) and nothing
 * sent may have executed, it is retired here (audited) and a fresh request built for what is granted now,
 * under the next generation's key. If something sent may have executed, the kept request is the one the
 * venue may have executed, so it is sent again whatever the grant.
 */
async function reserveKept(
  deps: WorkerDeps,
  records: ExecutionRecords,
  data: ExecutionJob,
  jobId: string,
  attempt: number,
  kept: SentRequest<ExecutionRequest>,
  prior: ExecutionRecord,
): Promise<Ready> {
  const req = kept.request;
  const mismatch = keptMismatch(data, idempotencyKeyFor(jobId, prior.gen), req);
  if (mismatch) throw new UnrecoverableError(`the request kept for ${jobId} ${mismatch}: nothing sent`);
  const reservations = new Reservations(deps.redis, deps.keys);
  const grants = await reservations.reserve(
    data.account,
    data.epoch,
    req.idempotencyKey,
    req.orders.map((o) => ({
      symbol: o.symbol,
      qty: o.qty,
      // contracts: |position| at the epoch, of the job's order of that symbol
      cap: Math.abs(data.orders.find((d) => d.symbol === o.symbol)?.positionQty ?? 0),
    })),
    retiredKeysBefore(jobId, prior.gen),
  );
  const short = req.orders.flatMap((o, i) =>
    (grants[i] ?? 0) + MIN_QTY < o.qty ? [`${o.symbol} ${grants[i] ?? 0} < ${o.qty}`] : [],
  );
  if (short.length === 0 || mayHaveExecuted(prior))
    return { request: req, body: kept.body ?? undefined, gen: prior.gen };
  const r = await records.retire(jobId, prior.gen);
  if (r.status !== 'retired')
    // another attempt sent it or retired it meanwhile: nothing sent now, the retry reads the record again
    throw new Error(
      `the request kept under ${req.idempotencyKey} is not covered by its reservation (${short.join(', ')}) and could not be retired (${r.status}): not sent`,
    );
  const next = idempotencyKeyFor(jobId, r.gen);
  const why = `the request kept under ${req.idempotencyKey} is not covered by its reservation (contracts granted < kept: ${short.join(', ')}) and nothing sent under it may have executed`;
  deps.log.info(
    { jobId, retired: req.idempotencyKey, gen: r.gen, short },
    'kept request not covered and not executed: retired, a fresh request is built',
  );
  // audited once per retired generation (this attempt may be retried): which one, why, and the new key
  await deps.audit
    .appendOnce(`retired:${req.idempotencyKey}`, 'failure', data.account, jobId, {
      kind: data.kind,
      epoch: data.epoch,
      attempt,
      outcome: 'retired',
      reason: why,
      retired: { key: req.idempotencyKey, gen: prior.gen, next },
    })
    .catch((w: unknown) =>
      deps.log.error(
        { jobId, retired: req.idempotencyKey, err: (w as Error).message },
        'the audit of a retired request was not written',
      ),
    );
  return buildRequest(deps, records, data, jobId, r.gen);
}

/** Why a kept request is not this job's (a payload changed under a job id), or undefined. */
function keptMismatch(data: ExecutionJob, key: string, req: ExecutionRequest): string | undefined {
  if (req.idempotencyKey !== key || req.kind !== data.kind || req.account !== data.account)
    return `is for ${req.kind} ${req.account} under key ${req.idempotencyKey}, not this job's (${key})`;
  if (!Array.isArray(req.orders) || req.orders.length === 0) return 'has no orders';
  const bad = req.orders.find(
    (o) => !data.orders.some((d) => d.symbol === o.symbol && d.side === o.side && o.qty <= d.qty),
  );
  if (bad) return `orders ${bad.side} ${bad.qty} ${bad.symbol}, which this job's payload does not`;
  return undefined;
}

type RecordedFill = { ok: true; event: FillEvent } | { ok: false; why: string };
type FillEvent = Extract<CanonicalEvent, { type: 'fill' | 'liquidation' }>;

/** A venue fill as the event the log records (its id derived from the job, so a retry never records twice). */
function recordedFill(data: ExecutionJob, jobId: string, f: VenueFill, i: number): RecordedFill {
  const common = {
    id: execEventId(jobId, i),
    ts: f.ts,
    account: data.account,
    symbol: f.symbol,
    side: f.side,
    qty: f.qty,
    price: f.price,
  };
  const raw =
    data.kind === 'liquidate'
      ? // USD: the event's penalty cannot be negative; a venue rebate is recorded as 0 (audited)
        { type: 'liquidation', ...common, fee: Math.max(0, f.fee) }
      : { type: 'fill', ...common, fee: f.fee, liquidity: 'taker', orderId: orderIdFor(jobId) };
  const ev = parseEvent(raw);
  if (!ev.ok) return { ok: false, why: `${ev.field}: ${ev.reason}` };
  return { ok: true, event: ev.event as FillEvent };
}

/** What the audit lists of a recorded fill. */
function fillOf(ev: FillEvent) {
  return {
    id: ev.id,
    symbol: ev.symbol,
    side: ev.side,
    qty: ev.qty,
    price: ev.price,
    fee: ev.fee,
    ts: ev.ts,
  };
}

/**
 * The venue executed but its fills cannot be recorded as they are: audit what it answered and fail the
 * job at once for an operator (the reservation is kept; a later decision does not retry it).
 */
async function needsOperator(
  deps: WorkerDeps,
  data: ExecutionJob,
  jobId: string,
  attempt: number,
  answer: ExecutedAnswer,
  why: string,
  statuses?: string[],
): Promise<UnrecoverableError> {
  await deps.audit.append('failure', data.account, jobId, {
    kind: data.kind,
    epoch: data.epoch,
    attempt,
    outcome: 'needs-operator',
    reason: why,
    venue: answer.venue,
    reference: answer.reference ?? null,
    granted: answer.granted,
    venueFills: answer.fills,
    ...(statuses ? { logStatuses: statuses } : {}),
    reservation: KEPT_ANSWERED,
  });
  return new UnrecoverableError(`${NEEDS_OPERATOR}${why}`);
}

/** what the audit says of a reservation kept because the venue answered 2xx */
const KEPT_ANSWERED = 'kept: the venue answered 2xx';
/** ... or because a request was sent and not answered 2xx (timeout, connection reset, 5xx, 408) */
const KEPT_UNANSWERED =
  'kept: the request may have reached the venue and no answer says it was not executed (no answer, a 5xx or a 408: outcome unknown)';
/** ... or because the venue's endpoint answered a redirect (3xx), not followed */
const KEPT_REDIRECTED =
  'kept: the venue answered a redirect (3xx), not followed; it may have acted on the request (needs an operator)';
/** ... or because a request was sent and its outcome is not recorded (a write failed, the worker stopped) */
const KEPT_SENT_UNRECORDED =
  'kept: a request was sent and its outcome is not recorded (a write failed, or the worker stopped mid-send); the venue may have executed it';
/** ... or because the record is not at the generation the settlement read (it cannot tell what ran since) */
const KEPT_MOVED = 'kept: the execution record moved on while the job was settled; nothing was retired';

/** A redirect's Location as audited: at most 300 characters, as in the failure message. */
function auditedLocation(location: string | null): string | null {
  return location === null ? null : location.slice(0, 300);
}

/**
 * A job that failed for good: unless the venue may have executed something sent for it (it answered 2xx,
 * redirected, or a send has no recorded definite non-execution), its kept request is retired and then its
 * reservation given back (a run on a new decision builds a fresh request under a new key); the failure is
 * audited, saying which. The retirement is the decision: an attempt still running (a stalled copy) can no
 * longer send the retired request, and one that counted its send first keeps the reservation.
 */
async function settleFailed(deps: WorkerDeps, kind: QueueKind, job: Job, err: Error): Promise<void> {
  const data = job.data as Partial<ExecutionJob>;
  const jobId = job.id ?? '';
  let reservation: string | undefined;
  let retired: { key: string; next: string } | undefined;
  if (typeof data.account === 'string' && typeof data.epoch === 'number' && Array.isArray(data.orders)) {
    try {
      const records = recordsOf(deps);
      // the generation to retire, named: a resent or late call retires nothing more
      const { gen } = await records.get(jobId);
      const r = await records.retire(jobId, gen);
      if (r.status === 'retired') {
        // only that generation's share: a run of the next generation (a new decision, already) reserves
        // under its own key and has taken this share over if it came first
        if (r.hadRequest) retired = { key: r.retiredKey, next: idempotencyKeyFor(jobId, r.gen) };
        await new Reservations(deps.redis, deps.keys).release(
          data.account,
          data.epoch,
          r.retiredKey,
          data.orders.map((o) => String(o.symbol)),
        );
        reservation = 'released';
      } else if (r.status === 'answered') {
        const rec = await records.get(jobId);
        reservation = rec.redirected ? KEPT_REDIRECTED : rec.unanswered ? KEPT_UNANSWERED : KEPT_ANSWERED;
      } else reservation = r.status === 'sent' ? KEPT_SENT_UNRECORDED : KEPT_MOVED;
    } catch (e) {
      reservation = `not released: ${(e as Error).message}`;
    }
  }
  await deps.audit
    .append('failure', String(data.account ?? ''), jobId, {
      kind,
      attempts: job.attemptsMade,
      reason: err.message,
      ...(reservation ? { reservation } : {}),
      // the venue did not execute what was sent under this key: a new decision sends a fresh request
      ...(retired ? { retired } : {}),
    })
    .catch((w: unknown) =>
      deps.log.error(
        { queue: kind, jobId, reservation, retired, reason: err.message, err: (w as Error).message },
        'the final failure audit was not written',
      ),
    );
}

/** which process executed a job (audited) */
const WORKER_ID = `${hostname()}:${process.pid}`;

/** contracts: grants below this are float dust, not an order */
const MIN_QTY = 1e-9;

async function skip(deps: WorkerDeps, data: ExecutionJob, jobId: string, why: string): Promise<JobOutcome> {
  await deps.audit.appendOnce(`execution:${jobId}`, 'execution', data.account, jobId, {
    kind: data.kind,
    epoch: data.epoch,
    skipped: why,
    orders: data.orders,
  });
  return { skipped: why, venue: deps.venue.name, fills: 0, notional: 0 };
}

export interface ExecutionWorkers {
  workers: Record<QueueKind, Worker>;
  /** per queue, the jobs whose start its worker holds (for the duration metric): only jobs in its hands */
  timedJobs(): Record<QueueKind, number>;
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
  const timed = {} as Record<QueueKind, Map<string, { job: Job; t0: number }>>;
  const make = (kind: QueueKind, concurrency: number): Worker => {
    // when each job became active here (performance.now()), for its duration: read and dropped when the job
    // completes or fails here, and dropped in any case once this worker is done with the job, which also
    // covers the paths without an event here (it lost its lock and finished elsewhere, the worker closed
    // mid-job): at most one entry per job this worker is processing, not one per job it ever took
    const started = new Map<string, { job: Job; t0: number }>();
    timed[kind] = started;
    class TimedWorker extends Worker {
      override async processJob(job: Job, token: string, fetchNext?: () => boolean) {
        try {
          return await super.processJob(job, token, fetchNext);
        } finally {
          // this run's entry only: the job may be active here again already (picked up after a stall)
          const id = job.id ?? '';
          if (started.get(id)?.job === job) started.delete(id);
        }
      }
    }
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
    const w = new TimedWorker(QUEUES[kind], kind === 'restrict' ? restrict : processor, opts);
    w.on('active', (job) => started.set(job.id ?? '', { job, t0: performance.now() }));
    const elapsed = (job: Job | undefined): number => {
      const t0 = started.get(job?.id ?? '')?.t0;
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
      if (final && job)
        void settleFailed(deps, kind, job, err).catch((e: unknown) =>
          deps.log.error(
            { queue: kind, jobId: job.id, err: (e as Error).message },
            'settling a failed job failed',
          ),
        );
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
    timedJobs: () => ({
      liquidate: timed.liquidate.size,
      deleverage: timed.deleverage.size,
      restrict: timed.restrict.size,
    }),
    async close() {
      await Promise.all(Object.values(workers).map((w) => w.close()));
    },
  };
}
