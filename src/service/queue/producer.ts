/**
 * Enqueuing execution jobs: `liquidate` (always priority 1, the highest) and `deleverage` (higher pd
 * first), and the reduce-only restriction changes (`restrict`, in order of their event time). The job id is derived from account, kind and decision epoch, so BullMQ keeps one job per
 * decision however often it is enqueued. A job of that id that failed for good after running out of
 * attempts (the venue was down, or its answers unusable) is retried under the same id when the decision
 * is made again: if the venue may have executed it, the worker sends the request it kept, under the same
 * idempotency key; if the venue did not, the worker builds a fresh one under a new key (`<jobId>#g<n>`,
 * see `ExecutionRecords`). A job waiting, running, delayed or completed is left alone. The producer shares a fail-fast connection: when Redis is down `enqueue` rejects at once
 * instead of queueing in memory.
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

export interface ProducerOptions {
  attempts: number;
  /** ms, first retry delay (exponential) */
  backoffMs: number;
}

/** s: completed jobs are kept this long, so their ids keep de-duplicating late re-enqueues */
const KEEP_COMPLETED_S = 7 * 86_400;

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

  constructor(
    redis: Redis,
    keys: Keyspace,
    private readonly opts: ProducerOptions,
  ) {
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
   * under a new key).
   */
  async enqueue(job: ActionJob, hooks: EnqueueHooks = {}): Promise<EnqueueResult> {
    const data = job.kind === 'restrict' ? RestrictJobSchema.parse(job) : ExecutionJobSchema.parse(job);
    const jobId = data.kind === 'restrict' ? jobIdOf(data) : jobIdFor(data.kind, data.account, data.epoch);
    const queue = this.queues[data.kind];
    const existing = await queue.getJob(jobId);
    if (existing) return { jobId, created: false, retried: await this.retryFailed(existing, hooks) };
    const opts: JobsOptions = {
      jobId,
      // restrictions keep their order (FIFO, no priority); liquidations first, then reductions by pd
      ...(data.kind === 'restrict'
        ? {}
        : { priority: data.kind === 'liquidate' ? 1 : 2 + Math.round((1 - (data.decision.pd ?? 1)) * 1000) }),
      attempts: this.opts.attempts,
      backoff: { type: 'exponential', delay: this.opts.backoffMs },
      removeOnComplete: { age: KEEP_COMPLETED_S },
      removeOnFail: false,
    };
    await queue.add(data.kind, data, opts);
    return { jobId, created: true, retried: false };
  }

  /** Retry `job` if it failed for good and runs again on a new decision; true if it was retried here. */
  private async retryFailed(job: Job, hooks: EnqueueHooks): Promise<boolean> {
    if (!(await job.isFailed()) || !retriesOnRedecision(job)) return false;
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
      if (!(await job.isFailed())) return false; // another producer retried it first
      throw e;
    }
    return true;
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
