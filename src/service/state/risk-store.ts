/**
 * Evaluation results in Redis: per shard, a hash account -> risk view (JSON) and a sorted set of
 * accounts by pd (the at-risk list). Evaluators write, API processes read; reads of many accounts are
 * one HMGET per shard.
 */
import type { Redis } from 'ioredis';
import type { RiskView } from '../api/schemas.js';
import { type Keyspace, shardOf } from './keys.js';

export class RiskStore {
  constructor(
    private readonly redis: Redis,
    private readonly keys: Keyspace,
    private readonly shards: number,
    /** pd at or above which an account is listed at risk */
    private readonly atRiskMinPd: number,
  ) {}

  /** Write one shard's fresh views in one round trip. */
  async write(shard: number, views: readonly RiskView[]): Promise<void> {
    if (views.length === 0) return;
    const multi = this.redis.multi();
    const hash: string[] = [];
    const listed: (string | number)[] = [];
    const unlisted: string[] = [];
    for (const v of views) {
      hash.push(v.account, JSON.stringify(v));
      if (v.pd !== null && v.pd >= this.atRiskMinPd) listed.push(v.pd, v.account);
      else unlisted.push(v.account);
    }
    multi.hset(this.keys.risk(shard), ...hash);
    if (listed.length > 0) multi.zadd(this.keys.atRisk(shard), ...listed);
    if (unlisted.length > 0) multi.zrem(this.keys.atRisk(shard), ...unlisted);
    await multi.exec();
  }

  async get(account: string): Promise<RiskView | undefined> {
    const raw = await this.redis.hget(this.keys.risk(shardOf(account, this.shards)), account);
    return raw ? (JSON.parse(raw) as RiskView) : undefined;
  }

  /** Views of many accounts, in the order asked; `missing` lists those never evaluated. */
  async getMany(accounts: readonly string[]): Promise<{ results: RiskView[]; missing: string[] }> {
    const byShard = new Map<number, string[]>();
    for (const a of new Set(accounts)) {
      const s = shardOf(a, this.shards);
      const list = byShard.get(s) ?? [];
      list.push(a);
      byShard.set(s, list);
    }
    const found = new Map<string, RiskView>();
    const pipe = this.redis.pipeline();
    const order = [...byShard.entries()];
    for (const [s, list] of order) pipe.hmget(this.keys.risk(s), ...list);
    const replies = (await pipe.exec()) ?? [];
    order.forEach(([, list], i) => {
      const [err, values] = replies[i] ?? [null, []];
      if (err) throw err;
      (values as (string | null)[]).forEach((raw, j) => {
        const a = list[j];
        if (raw && a !== undefined) found.set(a, JSON.parse(raw) as RiskView);
      });
    });
    const results: RiskView[] = [];
    const missing: string[] = [];
    for (const a of new Set(accounts)) {
      const v = found.get(a);
      if (v) results.push(v);
      else missing.push(a);
    }
    return { results, missing };
  }

  /** Accounts with pd >= minPd, highest first, across shards. */
  async atRisk(minPd: number, limit: number): Promise<{ account: string; pd: number }[]> {
    const pipe = this.redis.pipeline();
    for (let s = 0; s < this.shards; s++)
      pipe.zrange(this.keys.atRisk(s), '+inf', minPd, 'BYSCORE', 'REV', 'LIMIT', 0, limit, 'WITHSCORES');
    const replies = (await pipe.exec()) ?? [];
    const items: { account: string; pd: number }[] = [];
    for (const [err, flat] of replies) {
      if (err) throw err;
      const list = flat as string[];
      for (let i = 0; i + 1 < list.length; i += 2)
        items.push({ account: list[i] as string, pd: Number(list[i + 1]) });
    }
    items.sort((a, b) => b.pd - a.pd || (a.account < b.account ? -1 : 1));
    return items.slice(0, limit);
  }
}
