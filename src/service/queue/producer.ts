/**
 * Enqueuing execution jobs: `liquidate` (always priority 1, the highest) and `deleverage` (higher pd
 * first), and the reduce-only restriction changes (`restrict`, in order of their event time). The job id is derived from account, kind and decision epoch, so BullMQ keeps one job per
 * decision however often it is enqueued. The producer shares a fail-fast connection: when Redis is down
 * `enqueue` rejects at once instead of queueing in memory.
 */
import { type JobsOptions, Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Keyspace } from '../state/keys.js';
import {
  type ActionJob,
  ExecutionJobSchema,
  jobIdFor,
  jobIdOf,
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

  /** Enqueue a validated job; `created` is false when a job with that id already existed. */
  async enqueue(job: ActionJob): Promise<{ jobId: string; created: boolean }> {
    const data = job.kind === 'restrict' ? RestrictJobSchema.parse(job) : ExecutionJobSchema.parse(job);
    const jobId = data.kind === 'restrict' ? jobIdOf(data) : jobIdFor(data.kind, data.account, data.epoch);
    const queue = this.queues[data.kind];
    if (await queue.getJob(jobId)) return { jobId, created: false };
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
    return { jobId, created: true };
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
