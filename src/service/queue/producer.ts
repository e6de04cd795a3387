/**
 * Enqueuing execution jobs: `liquidate` (always priority 1, the highest) and `deleverage` (higher pd
 * first), and the reduce-only restriction changes (`restrict`, in order of their event time). The job id is derived from account, kind and decision epoch, so BullMQ keeps one job per
 * decision however often it is enqueued. A job of that id that failed for good after running out of
 * attempts (the venue was down, or its answers unusable) is retried under the same id when the decision
 * is made again: if the venue may have executed it, the worker sends the request it kept, under the same
 * idempotency key; if the venue did not, the worker builds a fresh one under a new key (`<jobId>#g<n>`,
 * see `ExecutionRecords`). A job waiting, running, delayed or completed is left alone. The producer shares a fail-fast connection: when Redis is down `enqueue` rejects at once
 * instead of queueing in memory.
 *
 * Failed jobs are kept for a bounded time (`failedRetentionMs`, PREEMPT_FAILED_JOB_RETENTION_MS, 30 days
 * by default, never less than the execution records' 7 days) and at most the newest KEEP_FAILED_MAX per
 * queue; BullMQ removes older ones when another job of the queue fails. Removing one never makes a new
 * decision apply its action twice, because nothing about what was sent lives in the failed job: a new
 * decision of a removed job adds a new job under the same id (its payload from the new decision), which
 * reads the same execution record (`exec:<jobId>`, kept 7 days after its last use, and the reservations of
 * its epoch) as a retry would: a send that may have executed is sent again under the same key with the
 * kept bytes (or, if the new payload does not cover it, nothing is sent), a retired generation is not
 * reused. Once that record has expired, a new job knows nothing of earlier sends, as a retry of a kept
 * failed job already did (see the README). What the failed job alone carried is that a job needing an
 * operator is not run again by a new decision: that is kept apart, without expiry, in
 * `NeedsOperatorMarks`, which `enqueue` consults before adding a job (written by the worker when such a job
 * fails, by `enqueue` when it meets one unmarked, and for failures older than the marks by
 * `markFailedNeedingOperator` at a worker's start). A failed job removed between its look-up and its retry
 * is added again, so the decision is not lost.
 */
import { type Job, type JobsOptions, Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Keyspace } from '../state/keys.js';
import {
  type ActionJob,
  ExecutionJobSchema,
  jobIdFor,
  jobIdOf,
  NEEDS_OPERATOR,
  QUEUES,
  type QueueKind,
  RestrictJobSchema,
} from './job.js';
import { NeedsOperatorMarks } from './needs-operator.js';

export interface ProducerOptions {
  attempts: number;
  /** ms, first retry delay (exponential) */
  backoffMs: number;
  /** ms a job that failed for good is kept (PREEMPT_FAILED_JOB_RETENTION_MS; default FAILED_RETENTION_MS) */
  failedRetentionMs?: number;
}

/** s: completed jobs are kept this long, so their ids keep de-duplicating late re-enqueues */
const KEEP_COMPLETED_S = 7 * 86_400;

/** ms a job that failed for good is kept by default (the default of PREEMPT_FAILED_JOB_RETENTION_MS) */
export const FAILED_RETENTION_MS = 30 * 86_400_000;

/**
 * failed jobs kept per queue at most, the newest (a few KB each: ~250 MB at most per queue); during an
 * outage failing more than that within the retention the oldest go sooner, which is as safe (see above)
 */
export const KEEP_FAILED_MAX = 50_000;

export interface EnqueueResult {
  jobId: string;
  /** a new job was added (false: a job with that id existed) */
  created: boolean;
  /** the existing job had failed for good and was put back to run again, under the same id */
  retried: boolean;
}

/** A failed job about to be retried because its decision was made again. */
export interface FailedJob {
  jobId: string;
  /** ms, when it failed (wall clock); null if BullMQ did not record it */
  failedOn: number | null;
  reason: string;
  attemptsMade: number;
}

export interface EnqueueHooks {
  /** runs before a failed job is retried (to audit it); if it throws, the job is not retried */
  beforeRetry?: (failed: FailedJob) => Promise<void>;
}

/**
 * Whether a failed job runs again when its decision is made again: yes if its attempts ran out (the venue
 * stayed down, or its answers could not be used); not if it failed unrecoverably before that (the venue
 * refused the request, the payload was invalid, or it needs an operator, e.g. its venue URL redirects),
 * which would fail the same way.
 */
export function retriesOnRedecision(job: Job): boolean {
  if (job.failedReason?.startsWith(NEEDS_OPERATOR)) return false;
  return job.attemptsMade >= (job.opts.attempts ?? 1);
}

export const JOB_STATES = [
  'waiting',
  'active',
  'delayed',
  'prioritized',
  'completed',
  'failed',
  'waiting-children',
] as const;

export class ActionProducer {
  readonly queues: Record<QueueKind, Queue>;
  private readonly operator: NeedsOperatorMarks;

  constructor(
    private readonly redis: Redis,
    keys: Keyspace,
    private readonly opts: ProducerOptions,
  ) {
    this.operator = new NeedsOperatorMarks(redis, keys);
    const make = (name: string) =>
      new Queue(name, { connection: redis, prefix: keys.bull, skipWaitingForReady: true });
    this.queues = {
      liquidate: make(QUEUES.liquidate),
      deleverage: make(QUEUES.deleverage),
      restrict: make(QUEUES.restrict),
    };
    for (const q of Object.values(this.queues)) q.on('error', () => {});
  }

  /**
   * Enqueue a validated job; `created` is false when a job with that id already existed, `retried` true
   * when that job had failed for good and runs again (see `retriesOnRedecision`; its payload is kept, and
   * the worker sends the request it kept for the job unless the venue did not execute it: then a fresh one
   * under a new key). No job is added for an id marked as needing an operator (`NeedsOperatorMarks`),
   * whose failed job may have been removed since.
   */
  async enqueue(job: ActionJob, hooks: EnqueueHooks = {}): Promise<EnqueueResult> {
    const data = job.kind === 'restrict' ? RestrictJobSchema.parse(job) : ExecutionJobSchema.parse(job);
    const jobId = data.kind === 'restrict' ? jobIdOf(data) : jobIdFor(data.kind, data.account, data.epoch);
    const queue = this.queues[data.kind];
    const existing = await queue.getJob(jobId);
    if (existing) {
      const retried = await this.retryFailed(existing, hooks);
      // removed (its retention ran out) since it was read: added again below, the decision is not lost
      if (retried !== 'gone') return { jobId, created: false, retried };
    }
    if (await this.operator.has(jobId)) return { jobId, created: false, retried: false };
    const opts: JobsOptions = {
      jobId,
      // restrictions keep their order (FIFO, no priority); liquidations first, then reductions by pd
      ...(data.kind === 'restrict'
        ? {}
        : { priority: data.kind === 'liquidate' ? 1 : 2 + Math.round((1 - (data.decision.pd ?? 1)) * 1000) }),
      attempts: this.opts.attempts,
      backoff: { type: 'exponential', delay: this.opts.backoffMs },
      removeOnComplete: { age: KEEP_COMPLETED_S },
      removeOnFail: {
        age: Math.ceil((this.opts.failedRetentionMs ?? FAILED_RETENTION_MS) / 1000),
        count: KEEP_FAILED_MAX,
      },
    };
    await queue.add(data.kind, data, opts);
    return { jobId, created: true, retried: false };
  }

  /**
   * Retry `job` if it failed for good and runs again on a new decision; true if it was retried here, 'gone'
   * if the job no longer exists (removed after its retention).
   */
  private async retryFailed(job: Job, hooks: EnqueueHooks): Promise<boolean | 'gone'> {
    const state = await job.getState();
    if (state === 'unknown') return 'gone';
    if (state !== 'failed') return false;
    if (job.failedReason?.startsWith(NEEDS_OPERATOR)) {
      // normally marked by the worker when it failed; marked here too, in case that write failed
      await this.operator.mark(job.id ?? '', {
        queue: job.queueName,
        reason: job.failedReason,
        failedOn: job.finishedOn ?? null,
      });
      return false;
    }
    if (!retriesOnRedecision(job)) return false;
    await hooks.beforeRetry?.({
      jobId: job.id ?? '',
      failedOn: job.finishedOn ?? null,
      reason: job.failedReason ?? '',
      attemptsMade: job.attemptsMade,
    });
    try {
      // all its attempts again (each with the backoff); attempts count from 1 again in the audit
      await job.retry('failed', { resetAttemptsMade: true, resetAttemptsStarted: true });
    } catch (e) {
      const now = await job.getState();
      if (now === 'unknown') return 'gone'; // removed meanwhile (its retention ran out)
      if (now !== 'failed') return false; // another producer retried it first
      throw e;
    }
    return true;
  }

  /**
   * Mark every failed job of the queues that needs an operator and has no mark yet (it failed before the
   * marks existed, or its mark could not be written): a worker process runs this at its start, before it
   * enqueues anything, since the first job it adds that fails removes the failed jobs past their retention
   * (earlier versions kept them forever). Reads only the ids and failure reasons (ZSCAN, so none present
   * throughout is missed). Returns how many it marked.
   */
  async markFailedNeedingOperator(): Promise<number> {
    let marked = 0;
    for (const queue of Object.values(this.queues)) {
      let cursor = '0';
      do {
        const [next, flat] = await this.redis.zscan(queue.keys.failed as string, cursor, 'COUNT', 1000);
        cursor = next;
        const ids = flat.filter((_, i) => i % 2 === 0);
        if (ids.length === 0) continue;
        const tx = this.redis.pipeline();
        for (const id of ids) tx.hmget(queue.toKey(id), 'failedReason', 'finishedOn');
        const res = (await tx.exec()) ?? [];
        for (const [i, [err, v]] of res.entries()) {
          if (err) throw err;
          const [reason, finishedOn] = v as [string | null, string | null];
          if (!reason?.startsWith(NEEDS_OPERATOR)) continue;
          const id = ids[i] as string;
          if (await this.operator.has(id)) continue;
          await this.operator.mark(id, {
            queue: queue.name,
            reason,
            failedOn: finishedOn === null ? null : Number(finishedOn),
          });
          marked++;
        }
      } while (cursor !== '0');
    }
    return marked;
  }

  async depths(): Promise<Record<QueueKind, Record<string, number>>> {
    const [liquidate, deleverage, restrict] = await Promise.all([
      this.queues.liquidate.getJobCounts(...JOB_STATES),
      this.queues.deleverage.getJobCounts(...JOB_STATES),
      this.queues.restrict.getJobCounts(...JOB_STATES),
    ]);
    return { liquidate, deleverage, restrict };
  }

  async close(): Promise<void> {
    await Promise.all(Object.values(this.queues).map((q) => q.close()));
  }
}
