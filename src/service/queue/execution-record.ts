/**
 * What the venue answered to an execution job, kept in Redis across the job's attempts (and a later retry
 * of the failed job). Once the venue has answered 2xx, or a request was sent and not answered (a timeout,
 * a reset connection), the job may have reduced the position, so it
 * - never gives its reservation back,
 * - is not skipped as stale (an execution at its epoch must be recorded whatever happened since),
 * - with a usable answer, records exactly that answer on a retry instead of asking the venue again,
 * - and once its fills are in the log, does not append them again.
 */
import type { Redis } from 'ioredis';
import type { Keyspace } from '../state/keys.js';
import type { VenueFill } from '../venue/types.js';

/** ms a record is kept (as long as reservations and completed job ids) */
const KEEP_MS = 7 * 86_400_000;

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
   * ms, wall clock of the venue's first 2xx answer, or of the first request sent and not answered
   * (`unanswered`); undefined while the venue cannot have executed
   */
  answeredAt?: number;
  /** why the latest attempt's outcome is unknown (a 2xx that could not be used, or no answer) */
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

function check(res: [Error | null, unknown][] | null): void {
  const failed = res?.find(([err]) => err);
  if (!res || failed) throw failed?.[0] ?? new Error('execution record: transaction aborted');
}
