/**
 * Evaluator shards on a real Redis under a fresh prefix, without the API or the execution workers: events
 * are validated as the API does and appended to the log, jobs stay in their queues. Runners and supervisors
 * made here are stopped, and every key of the prefix deleted, by `close()`.
 */
import type { Redis } from 'ioredis';
import { parseEvent } from '../../src/events/validate.js';
import { type PolicyConfig, resolvePolicyConfig } from '../../src/margin/index.js';
import type { PdScorer } from '../../src/model/types.js';
import { type RunnerDeps, ShardRunner } from '../../src/service/evaluator/runner.js';
import { EvaluatorSupervisor } from '../../src/service/evaluator/supervisor.js';
import { createMetrics } from '../../src/service/metrics.js';
import { ModelHolder, type ScorerLoader } from '../../src/service/model/holder.js';
import { ActionProducer } from '../../src/service/queue/producer.js';
import { AuditLog } from '../../src/service/state/audit.js';
import { appendEvents } from '../../src/service/state/event-log.js';
import { keyspace } from '../../src/service/state/keys.js';
import { connectRedis, createRedis } from '../../src/service/state/redis.js';
import { RestrictionStore } from '../../src/service/state/restrictions.js';
import { RiskStore } from '../../src/service/state/risk-store.js';
import { connect, deletePrefix, freshPrefix, redisUrl } from '../helpers/redis.js';
import { silent } from './harness.js';
import { ALL_JOB_STATES } from './settle.js';
import { testModelLoader } from './test-model.js';

/** What a switchable scorer does: `throwing` makes its `score()` throw (with this message). */
export interface ScorerFault {
  throwing: string | null;
}

/** The test model, whose `score()` throws while `fault.throwing` is set. */
export function faultyLoader(fault: ScorerFault): ScorerLoader {
  return async (dir) => {
    const s: PdScorer = await testModelLoader(dir);
    return {
      ...s,
      async score(matrix, rows) {
        if (fault.throwing !== null) throw new Error(fault.throwing);
        return s.score(matrix, rows);
      },
    };
  };
}

export type Kit = Awaited<ReturnType<typeof runnerKit>>;

export async function runnerKit(
  label: string,
  opts: { loader?: ScorerLoader; policy?: Partial<PolicyConfig> } = {},
) {
  const prefix = freshPrefix(label);
  const keys = keyspace(prefix);
  const redis = await connectRedis(redisUrl(), 'fail-fast');
  /** for the test's own reads and writes */
  const admin = connect();
  const model = new ModelHolder('models/test', opts.loader ?? testModelLoader, silent);
  await model.reload();
  const producer = new ActionProducer(redis, keys, { attempts: 3, backoffMs: 10 });
  const metrics = createMetrics();
  const policy = resolvePolicyConfig(opts.policy ?? {});
  const readers: Redis[] = [];
  const runners: ShardRunner[] = [];
  const supervisors: EvaluatorSupervisor[] = [];
  const newReader = (): Redis => {
    const r = createRedis(redisUrl(), 'wait', 'test-reader');
    void r.connect().catch(() => {});
    readers.push(r);
    return r;
  };
  const base = {
    redis,
    keys,
    shards: 1,
    batch: 100,
    policy,
    model,
    producer,
    store: new RiskStore(redis, keys, 1, 0.01),
    restrictions: new RestrictionStore(redis, keys, 1),
    audit: new AuditLog(redis, keys),
    metrics,
    log: silent,
    blockMs: 100,
  };
  return {
    prefix,
    keys,
    redis,
    admin,
    model,
    producer,
    metrics,
    store: base.store,
    /** a shard-0 runner (not started) */
    runner(consumer: string, extra: Partial<RunnerDeps> = {}): ShardRunner {
      const r = new ShardRunner({ ...base, shard: 0, consumer, reader: newReader(), ...extra });
      runners.push(r);
      return r;
    },
    /** a started supervisor of shard 0 (lease `leaseMs`) */
    async supervisor(leaseMs = 10_000, extra: { shards?: number } = {}): Promise<EvaluatorSupervisor> {
      const s = new EvaluatorSupervisor({ ...base, newReader, leaseMs, maxShards: 0, ...extra });
      supervisors.push(s);
      await s.start();
      return s;
    },
    /** validate (as the API does) and append to the log; the entry ids */
    async append(raw: readonly unknown[]): Promise<string[]> {
      const events = raw.map((r, i) => {
        const p = parseEvent(r);
        if (!p.ok) throw new Error(`event ${i}: ${p.field}: ${p.reason}`);
        return p.event;
      });
      const res = await appendEvents(redis, keys, events, { dedupTtlMs: 60_000, partial: false });
      if (!res.ok) throw new Error(`append refused: ${res.symbol}`);
      return res.statuses.map((s) => (s.kind === 'appended' ? s.streamId : s.kind));
    },
    /** the id of the log's last entry */
    async tail(): Promise<string> {
      return (await admin.xrevrange(keys.stream, '+', '-', 'COUNT', 1))[0]?.[0] ?? '0-0';
    },
    /** ids of the jobs in a queue, sorted */
    async jobIds(queue: 'liquidate' | 'deleverage' | 'restrict'): Promise<string[]> {
      const jobs = await producer.queues[queue].getJobs([...ALL_JOB_STATES]);
      return jobs.map((j) => j.id as string).sort();
    },
    async metricsText(): Promise<string> {
      return metrics.registry.metrics();
    },
    async close(): Promise<void> {
      for (const s of supervisors) await s.close();
      for (const r of runners) await r.stop();
      for (const r of readers) r.disconnect();
      await producer.close();
      await model.close();
      redis.disconnect();
      await deletePrefix(admin, prefix);
      admin.disconnect();
    },
  };
}
