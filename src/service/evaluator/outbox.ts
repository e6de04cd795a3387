/**
 * What one evaluation step must write: risk views, jobs (with their decision or restriction audit), the
 * restriction records, settlement audits, market inputs, and the entries to acknowledge last. A write that fails leaves the rest in the outbox
 * for the next attempt; every write is idempotent (views overwrite, jobs have fixed ids, acks repeat).
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
import type { RiskStore } from '../state/risk-store.js';

export interface SettledAudit {
  account: string;
  jobId: string;
  data: Record<string, unknown>;
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
      await d.store.write(progress.shard, [...this.views.values()]);
      this.views.clear();
    }
    while (this.jobs.length > 0) {
      const job = this.jobs[0] as ActionJob;
      const r = await d.producer.enqueue(job);
      if (r.created && job.kind === 'restrict') {
        d.metrics.jobsEnqueued.inc({ queue: job.kind });
        const { kind: _, ...change } = job;
        await d.audit.append('restriction', job.account, r.jobId, change);
      } else if (r.created && job.kind !== 'restrict') {
        d.metrics.jobsEnqueued.inc({ queue: job.kind });
        await d.audit.append('decision', job.account, r.jobId, {
          kind: job.kind,
          epoch: job.epoch,
          decidedAt: job.decidedAt,
          decision: job.decision,
          orders: job.orders,
          market: job.market,
          modelVersion: job.modelVersion,
        });
      }
      this.jobs.shift();
    }
    if (this.records.length > 0) {
      await d.restrictions.write(progress.shard, this.records);
      this.records.length = 0;
    }
    while (this.settled.length > 0) {
      const a = this.settled[0] as SettledAudit;
      await d.audit.append('settled', a.account, a.jobId, a.data);
      this.settled.shift();
    }
    if (this.market.size > 0) {
      await writeMarket(d.redis, d.keys, this.market);
      this.market.clear();
    }
    if (this.acks.length > 0) {
      await d.redis.xack(d.keys.stream, progress.group, ...this.acks);
      this.acks = [];
      await d.redis.hset(d.keys.shardStatus(progress.shard), {
        lastEntryId: progress.lastEntryId,
        clock: String(progress.clock),
        consumer: progress.consumer,
        updatedAt: String(Date.now()),
      });
    }
  }
}
