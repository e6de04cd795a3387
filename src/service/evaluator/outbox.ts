/**
 * What one evaluation step must write: risk views, jobs (with their decision or restriction audit), the
 * restriction records, settlement audits, market inputs, and the entries to acknowledge last, then the
 * shard's status (the acks stay in the outbox until it is written). A write that fails leaves the rest in
 * the outbox for the next attempt; every write is idempotent (views overwrite, jobs have fixed ids, a job's
 * audit entry is written once per job id whichever attempt created the job, a settlement's once per log
 * entry, acks repeat), so also when two owners of a shard briefly overlap. A decision made again for a job
 * that failed for good retries it (see `ActionProducer.enqueue`), audited and counted. Views and the shard's
 * status are written under the shard's lease when the runner has one: a runner that lost it writes neither
 * (`LeaseLostError`), so a stale view or status never replaces the new owner's.
 */
import type { Redis } from 'ioredis';
import type { RiskView } from '../api/schemas.js';
import type { ServiceMetrics } from '../metrics.js';
import type { ActionJob } from '../queue/job.js';
import type { ActionProducer } from '../queue/producer.js';
import type { AuditLog } from '../state/audit.js';
import type { Keyspace } from '../state/keys.js';
import { type MarketRecord, writeMarket } from '../state/market.js';
import type { RestrictionRecord, RestrictionStore } from '../state/restrictions.js';
import type { RiskStore, WriteFence } from '../state/risk-store.js';
import { writeShardStatus } from '../state/shard-status.js';

export interface SettledAudit {
  /** the log entry of the fill: a settlement is audited once per entry, whichever owner applies it */
  entry: string;
  account: string;
  jobId: string;
  data: Record<string, unknown>;
}

/** A fenced write was refused: the shard's lease holds another value (taken over) or none (expired). */
export class LeaseLostError extends Error {
  constructor(shard: number) {
    super(`shard ${shard}: the lease is no longer held; results not written`);
  }
}

export interface OutboxDeps {
  redis: Redis;
  keys: Keyspace;
  store: RiskStore;
  restrictions: RestrictionStore;
  producer: ActionProducer;
  audit: AuditLog;
  metrics: ServiceMetrics;
}

/** where the shard stands once the acknowledgements are written */
export interface ShardProgress {
  shard: number;
  group: string;
  consumer: string;
  lastEntryId: string;
  /** ms, event time */
  clock: number;
  /** the shard's lease as this runner holds it; none: views and status are written unfenced */
  fence?: WriteFence;
}

/** The audit entry of a job's decision (`decision`) or restriction change (`restriction`). */
function auditOf(job: ActionJob): { kind: 'decision' | 'restriction'; data: Record<string, unknown> } {
  if (job.kind === 'restrict') {
    const { kind: _, ...change } = job;
    return { kind: 'restriction', data: change };
  }
  return {
    kind: 'decision',
    data: {
      kind: job.kind,
      epoch: job.epoch,
      decidedAt: job.decidedAt,
      decision: job.decision,
      orders: job.orders,
      market: job.market,
      modelVersion: job.modelVersion,
    },
  };
}

export class Outbox {
  readonly views = new Map<string, RiskView>();
  readonly jobs: ActionJob[] = [];
  /** restriction records, written after their jobs are enqueued */
  readonly records: RestrictionRecord[] = [];
  readonly settled: SettledAudit[] = [];
  readonly market = new Map<string, MarketRecord>();
  acks: string[] = [];

  pending(): boolean {
    return (
      this.views.size +
        this.jobs.length +
        this.records.length +
        this.settled.length +
        this.market.size +
        this.acks.length >
      0
    );
  }

  async flush(d: OutboxDeps, progress: ShardProgress): Promise<void> {
    if (this.views.size > 0) {
      if (!(await d.store.write(progress.shard, [...this.views.values()], progress.fence)))
        throw new LeaseLostError(progress.shard);
      this.views.clear();
    }
    while (this.jobs.length > 0) {
      const job = this.jobs[0] as ActionJob;
      const entry = auditOf(job);
      const r = await d.producer.enqueue(job, {
        // a job that failed for good runs again: audited (once per failure) with the decision that retried it
        beforeRetry: async (failed) => {
          await d.audit.appendOnce(
            `retry:${failed.jobId}:${failed.failedOn ?? 'unknown'}`,
            entry.kind,
            job.account,
            failed.jobId,
            {
              ...entry.data,
              retry: { failedOn: failed.failedOn, reason: failed.reason, attempts: failed.attemptsMade },
            },
          );
        },
      });
      if (r.created) d.metrics.jobsEnqueued.inc({ queue: job.kind });
      if (r.retried) d.metrics.jobsRetried.inc({ queue: job.kind });
      // once per job id, whether this call created the job or an earlier one did and its audit write failed
      await d.audit.appendOnce(`${entry.kind}:${r.jobId}`, entry.kind, job.account, r.jobId, entry.data);
      this.jobs.shift();
    }
    if (this.records.length > 0) {
      await d.restrictions.write(progress.shard, this.records);
      this.records.length = 0;
    }
    while (this.settled.length > 0) {
      const a = this.settled[0] as SettledAudit;
      // once per log entry: an owner taking over re-applies the entries after the committed one, and a
      // previous owner may still be writing the same ones (two fills of one job are two entries)
      await d.audit.appendOnce(`settled:${a.entry}`, 'settled', a.account, a.jobId, a.data);
      this.settled.shift();
    }
    if (this.market.size > 0) {
      await writeMarket(d.redis, d.keys, this.market);
      this.market.clear();
    }
    if (this.acks.length > 0) {
      const acked = this.acks.length;
      await d.redis.xack(d.keys.stream, progress.group, ...this.acks);
      // the acks are kept until the status is written: a flush retried after a failed status write
      // acknowledges them again (a no-op) and writes the status, instead of skipping it until the next batch.
      // Fenced as the views: a runner that lost the lease never replaces the new owner's status
      const written = await writeShardStatus(
        d.redis,
        d.keys,
        progress.shard,
        {
          lastEntryId: progress.lastEntryId,
          clock: progress.clock,
          consumer: progress.consumer,
          updatedAt: Date.now(),
        },
        progress.fence,
      );
      if (!written) throw new LeaseLostError(progress.shard);
      this.acks.splice(0, acked);
    }
  }
}
