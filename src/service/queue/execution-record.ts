/**
 * What the venue answered to an execution job, kept in Redis across the job's attempts (and a later retry
 * of the failed job). Once the venue has answered 2xx, or a request was sent and not answered (a timeout,
 * a reset connection), the job may have reduced the position, so it
 * - never gives its reservation back,
 * - is not skipped as stale (an execution at its epoch must be recorded whatever happened since),
 * - with a usable answer, records exactly that answer on a retry instead of asking the venue again,
 * - and once its fills are in the log, does not append them again.
 * Beside the record, the request sent under the job's idempotency key (`SentRequests`): kept before the
 * first send, and sent as it is, byte for byte, by every later attempt under that key.
 */
import type { Redis } from 'ioredis';
import type { Keyspace } from '../state/keys.js';
import type { VenueFill } from '../venue/types.js';

/** ms a record is kept (as long as reservations and completed job ids) */
export const KEEP_MS = 7 * 86_400_000;

/** A usable venue answer and what the job asked for. */
export interface ExecutedAnswer {
  venue: string;
  reference?: string;
  /** as the venue reported them */
  fills: VenueFill[];
  /** the orders sent (contracts granted by the reservation) */
  granted: { symbol: string; side: 'buy' | 'sell'; qty: number }[];
  /** ms, event time the venue executed at */
  eventTime: number;
  /** base units per contract of each ordered symbol at execution (for the USD notional) */
  contractSize: Record<string, number>;
}

export interface ExecutionRecord {
  /**
   * ms, wall clock of the venue's first 2xx answer, of the first request sent and not answered
   * (`unanswered`), or of a redirect (`redirected`); undefined while the venue cannot have executed
   */
  answeredAt?: number;
  /** the venue's endpoint answered 3xx (not followed): the job needs an operator */
  redirected?: boolean;
  /** why the latest attempt's outcome is unknown (a 2xx that could not be used, no answer, a 3xx) */
  unknown?: string;
  /** the venue may have executed but never answered 2xx (requests sent, none answered) */
  unanswered?: boolean;
  answer?: ExecutedAnswer;
  /** the answer's fills are in the event log */
  recorded: boolean;
}

export class ExecutionRecords {
  constructor(
    private readonly redis: Redis,
    private readonly keys: Keyspace,
  ) {}

  private key(jobId: string): string {
    return `${this.keys.prefix}:exec:${jobId}`;
  }

  async get(jobId: string): Promise<ExecutionRecord> {
    const h = await this.redis.hgetall(this.key(jobId));
    const rec: ExecutionRecord = { recorded: h.recorded === '1' };
    if (h.answeredAt !== undefined) rec.answeredAt = Number(h.answeredAt);
    if (h.unknown !== undefined) rec.unknown = h.unknown;
    if (h.unanswered === '1') rec.unanswered = true;
    if (h.redirected === '1') rec.redirected = true;
    if (h.answer !== undefined) rec.answer = JSON.parse(h.answer) as ExecutedAnswer;
    return rec;
  }

  /** The venue answered 2xx, but unusably: the outcome is unknown. */
  async answeredUnknown(jobId: string, reason: string): Promise<void> {
    await this.write(jobId, { unknown: reason }, true);
  }

  /**
   * The request may have reached the venue, but no answer came (a timeout, a connection reset after
   * sending): the outcome is unknown. Recorded as if answered (never skipped, never released), marked
   * `unanswered` until the venue answers 2xx.
   */
  async sentUnanswered(jobId: string, reason: string): Promise<void> {
    const key = this.key(jobId);
    const res = await this.redis
      .multi()
      .hsetnx(key, 'answeredAt', String(Date.now()))
      .hset(key, { unknown: reason })
      // a 2xx answered in an earlier attempt stays the record's kind
      .hsetnx(key, 'unanswered', '1')
      .pexpire(key, KEEP_MS)
      .exec();
    check(res);
  }

  /**
   * The venue's endpoint answered a redirect (3xx), not followed. It answered and may have acted on the
   * request before redirecting (a 303 is the usual answer to a processed POST), so the job is recorded as
   * answered: its reservation is kept, and it is never skipped as stale.
   */
  async redirected(jobId: string, reason: string): Promise<void> {
    await this.write(jobId, { unknown: reason, redirected: '1' });
  }

  /** The venue answered 2xx with fills (kept before they are appended to the log). */
  async answeredWith(jobId: string, answer: ExecutedAnswer): Promise<void> {
    await this.write(jobId, { answer: JSON.stringify(answer) }, true);
  }

  /** The answer's fills are in the event log. */
  async markRecorded(jobId: string): Promise<void> {
    await this.write(jobId, { recorded: '1' });
  }

  private async write(jobId: string, fields: Record<string, string>, answered2xx = false): Promise<void> {
    const key = this.key(jobId);
    const tx = this.redis.multi().hsetnx(key, 'answeredAt', String(Date.now())).hset(key, fields);
    // the venue answered 2xx: no longer only sent and unanswered
    if (answered2xx) tx.hset(key, 'unanswered', '0');
    check(await tx.pexpire(key, KEEP_MS).exec());
  }
}

/** A request as sent under a job's idempotency key. */
export interface SentRequest<R> {
  /** the venue request (orders, sizes, event time, market inputs) */
  request: R;
  /** the exact bytes the venue sent (a venue that sends a body), else null */
  body: string | null;
  /** ms, wall clock when it was kept */
  keptAt: number;
}

/**
 * The request of each job, kept under `<prefix>:exec:<jobId>:request` before it is first sent: every later
 * attempt under the job's idempotency key (a retry after an unknown outcome, after the venue was down, or
 * a failed job run again on a new decision) sends it as it is, never a request rebuilt from a newer market
 * or clock, since a venue that checks idempotency keys refuses a different body under a used key, and one
 * that does not may act on the first body while the job audits the second. Kept KEEP_MS (7 days) after
 * the last attempt that read it, as long as the job's reservation and execution record; an attempt after
 * that builds a new request (the venue is not expected to remember a key that long). A new job (a new
 * decision: a new epoch or restriction version) has a new id and key, so it builds its own.
 */
export class SentRequests {
  constructor(
    private readonly redis: Redis,
    private readonly keys: Keyspace,
  ) {}

  private key(jobId: string): string {
    return `${this.keys.prefix}:exec:${jobId}:request`;
  }

  /** The request kept for `jobId` (its expiry renewed), or undefined if none is. */
  async get<R>(jobId: string): Promise<SentRequest<R> | undefined> {
    const key = this.key(jobId);
    const res = await this.redis.multi().get(key).pexpire(key, KEEP_MS).exec();
    check(res);
    return parseSent<R>(jobId, res?.[0]?.[1]);
  }

  /**
   * Keep `request` (and the venue's `body` for it) as the job's request unless one is kept already, and
   * return the one kept: this one, or the one an earlier or concurrent attempt kept first. Throws (and the
   * caller sends nothing) if Redis does not confirm it.
   */
  async keep<R>(jobId: string, request: R, body: string | null): Promise<SentRequest<R>> {
    const key = this.key(jobId);
    const value: SentRequest<R> = { request, body, keptAt: Date.now() };
    const res = await this.redis
      .multi()
      .set(key, JSON.stringify(value), 'PX', KEEP_MS, 'NX')
      .get(key)
      .pexpire(key, KEEP_MS)
      .exec();
    check(res);
    const kept = parseSent<R>(jobId, res?.[1]?.[1]);
    if (!kept) throw new Error(`sent request of ${jobId}: not kept`);
    return kept;
  }
}

function parseSent<R>(jobId: string, raw: unknown): SentRequest<R> | undefined {
  if (raw === null || raw === undefined) return undefined;
  let v: Partial<SentRequest<R>> | null = null;
  try {
    v = JSON.parse(String(raw)) as Partial<SentRequest<R>>;
  } catch {
    v = null;
  }
  if (
    !v ||
    typeof v !== 'object' ||
    typeof v.request !== 'object' ||
    v.request === null ||
    !(v.body === null || typeof v.body === 'string') ||
    typeof v.keptAt !== 'number'
  )
    throw new Error(`sent request of ${jobId}: unreadable (${String(raw).slice(0, 100)})`);
  return { request: v.request, body: v.body, keptAt: v.keptAt };
}

function check(res: [Error | null, unknown][] | null): void {
  const failed = res?.find(([err]) => err);
  if (!res || failed) throw failed?.[0] ?? new Error('execution record: transaction aborted');
}
