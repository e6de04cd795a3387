/**
 * The jobs that failed for good needing an operator (`NEEDS_OPERATOR`: the venue executed, or may have, and
 * what it answered cannot be used as it is), remembered in one hash (`<prefix>:needs-operator`, job id ->
 * JSON) until an operator clears them. A new decision of such a job must not run it again. While BullMQ
 * keeps the failed job, the producer sees its failure and leaves it; failed jobs are removed after
 * PREEMPT_FAILED_JOB_RETENTION_MS (or beyond the newest KEEP_FAILED_MAX of a queue), and by then the job's
 * execution record, which alone knows what was sent, has expired too: only this mark keeps a new job of
 * that id from sending the order again under a key the venue may no longer remember. One entry per such
 * failure, never expired (as many as the incidents an operator has not dealt with); an operator clears it
 * (`HDEL <prefix>:needs-operator <jobId>`) once dealt with, and a new decision of that job then runs it.
 */
import type { Redis } from 'ioredis';
import type { Keyspace } from '../state/keys.js';

export interface NeedsOperatorMark {
  queue: string;
  /** the failure reason (cut to 500 characters) */
  reason: string;
  /** ms, wall clock of the failure; null if not known */
  failedOn: number | null;
}

export class NeedsOperatorMarks {
  constructor(
    private readonly redis: Redis,
    private readonly keys: Keyspace,
  ) {}

  /** Remember that job `jobId` needs an operator (the first mark of a job is kept). */
  async mark(jobId: string, mark: NeedsOperatorMark): Promise<void> {
    await this.redis.hsetnx(
      this.keys.needsOperator,
      jobId,
      JSON.stringify({ ...mark, reason: mark.reason.slice(0, 500) }),
    );
  }

  async has(jobId: string): Promise<boolean> {
    return (await this.redis.hexists(this.keys.needsOperator, jobId)) === 1;
  }

  async get(jobId: string): Promise<NeedsOperatorMark | undefined> {
    const raw = await this.redis.hget(this.keys.needsOperator, jobId);
    return raw === null ? undefined : (JSON.parse(raw) as NeedsOperatorMark);
  }
}
