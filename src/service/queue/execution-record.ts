/**
 * What the venue answered to an execution job, kept in Redis across the job's attempts (and a later retry
 * of the failed job). Once the venue has answered 2xx the job may have reduced the position, so it
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
  /** ms, wall clock of the venue's first 2xx answer; undefined while the venue has not answered 2xx */
  answeredAt?: number;
  /** why the latest 2xx answer could not be used (outcome unknown) */
  unknown?: string;
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
    if (h.answer !== undefined) rec.answer = JSON.parse(h.answer) as ExecutedAnswer;
    return rec;
  }

  /** whether the venue has answered 2xx to this job (in any attempt) */
  async answered(jobId: string): Promise<boolean> {
    return (await this.redis.hexists(this.key(jobId), 'answeredAt')) === 1;
  }

  /** The venue answered 2xx, but unusably: the outcome is unknown. */
  async answeredUnknown(jobId: string, reason: string): Promise<void> {
    await this.write(jobId, { unknown: reason });
  }

  /** The venue answered 2xx with fills (kept before they are appended to the log). */
  async answeredWith(jobId: string, answer: ExecutedAnswer): Promise<void> {
    await this.write(jobId, { answer: JSON.stringify(answer) });
  }

  /** The answer's fills are in the event log. */
  async markRecorded(jobId: string): Promise<void> {
    await this.write(jobId, { recorded: '1' });
  }

  private async write(jobId: string, fields: Record<string, string>): Promise<void> {
    const key = this.key(jobId);
    const res = await this.redis
      .multi()
      .hsetnx(key, 'answeredAt', String(Date.now()))
      .hset(key, fields)
      .pexpire(key, KEEP_MS)
      .exec();
    const failed = res?.find(([err]) => err);
    if (!res || failed) throw failed?.[0] ?? new Error('execution record: transaction aborted');
  }
}
