/**
 * Driving a deployment to a deterministic end state for comparison: hold the execution queues while a
 * history is ingested and evaluated (so every decision is made on the same log), then release them and
 * wait until every job ran and every fill was applied and settled.
 */
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { AuditEntry } from '../../src/service/state/audit.js';
import { AuditLog } from '../../src/service/state/audit.js';
import { type Keyspace, keyspace } from '../../src/service/state/keys.js';
import { eventually } from './wait.js';

/** Every state a BullMQ job can be found in, for listing a queue's jobs whatever became of them. */
export const ALL_JOB_STATES = ['waiting', 'prioritized', 'active', 'completed', 'failed', 'delayed'] as const;

export class QueueHold {
  private readonly queues: Queue[];
  constructor(redis: Redis, prefix: string) {
    const bull = keyspace(prefix).bull;
    this.queues = ['liquidate', 'deleverage', 'restrict'].map(
      (n) => new Queue(n, { connection: redis, prefix: bull }),
    );
  }
  pause = () => Promise.all(this.queues.map((q) => q.pause()));
  resume = () => Promise.all(this.queues.map((q) => q.resume()));
  async idle(): Promise<boolean> {
    for (const q of this.queues) {
      const c = await q.getJobCounts('waiting', 'active', 'delayed', 'prioritized');
      if (Object.values(c).some((n) => n > 0)) return false;
    }
    return true;
  }
  close = () => Promise.all(this.queues.map((q) => q.close()));
}

async function tail(redis: Redis, ks: Keyspace): Promise<string> {
  const last = await redis.xrevrange(ks.stream, '+', '-', 'COUNT', 1);
  return last[0]?.[0] ?? '0-0';
}

/** Every shard has evaluated the log up to its current end. */
export async function evaluatedToTail(redis: Redis, prefix: string, shards: number): Promise<void> {
  const ks = keyspace(prefix);
  await eventually(
    async () => {
      const end = await tail(redis, ks);
      const seen = await Promise.all(
        Array.from({ length: shards }, (_, s) => redis.hget(ks.shardStatus(s), 'lastEntryId')),
      );
      return seen.every((id) => id === end);
    },
    (ok) => ok,
    'every shard to evaluate the whole log',
    30_000,
  );
}

export async function allAudit(redis: Redis, prefix: string): Promise<AuditEntry[]> {
  const log = new AuditLog(redis, keyspace(prefix));
  const out: AuditEntry[] = [];
  let before: string | undefined;
  for (;;) {
    const page = await log.list({ limit: 1000, ...(before ? { before } : {}) });
    out.push(...page.items);
    if (!page.next) break;
    before = page.next;
  }
  return out.reverse();
}

/** Release the held jobs and wait until they ran, their fills were applied and settled, all at once. */
export async function releaseAndSettle(
  redis: Redis,
  prefix: string,
  shards: number,
  hold: QueueHold,
): Promise<AuditEntry[]> {
  await hold.resume();
  const ks = keyspace(prefix);
  const done = await eventually(
    async () => {
      const idle = await hold.idle();
      const end = await tail(redis, ks);
      const seen = await Promise.all(
        Array.from({ length: shards }, (_, s) => redis.hget(ks.shardStatus(s), 'lastEntryId')),
      );
      const audit = await allAudit(redis, prefix);
      const fills = (await redis.xrange(ks.stream, '-', '+')).filter(([, f]) =>
        f[1]?.includes('"id":"exec-'),
      ).length;
      const settled = audit.filter((e) => e.kind === 'settled').length;
      // every decision and every restriction change is executed (or skipped) once
      const decided = audit.filter((e) => e.kind === 'decision' || e.kind === 'restriction').length;
      const executed = audit.filter((e) => e.kind === 'execution').length;
      const evaluated = seen.every((id) => id === end);
      return {
        ok: idle && evaluated && settled === fills && decided === executed,
        audit,
        fills,
        settled,
        decided,
        executed,
        idle,
        evaluated,
      };
    },
    (x) => x.ok,
    'the queues to drain and every execution to settle',
    45_000,
  );
  return done.audit;
}

/** Decisions in comparable form: job id, action, rule, orders, pd. */
export function decisionKeys(audit: readonly AuditEntry[]): string[] {
  return audit
    .filter((e) => e.kind === 'decision')
    .map((e) => {
      const d = e.data as {
        decision: { action: string; rule: string; pd: number | null };
        orders: { symbol: string; side: string; qty: number }[];
      };
      const orders = d.orders.map((o) => `${o.symbol}:${o.side}:${o.qty.toFixed(9)}`).join(',');
      return `${e.jobId}|${d.decision.action}|${d.decision.rule}|${orders}|${d.decision.pd?.toFixed(6)}`;
    })
    .sort();
}
