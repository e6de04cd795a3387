/**
 * Evaluation results in Redis: per shard, a hash account -> risk view (JSON) and a sorted set of
 * accounts by pd (the at-risk list). Evaluators write, API processes read; reads of many accounts are
 * one HMGET per shard.
 */
import type { Redis } from 'ioredis';
import type { RiskView } from '../api/schemas.js';
import { type Keyspace, shardOf } from './keys.js';

/** A write under a fence happens only while `key` (a shard's lease) holds `value` (its writer's acquisition). */
export interface WriteFence {
  key: string;
  value: string;
}

// KEYS: fence (lease), risk hash, at-risk set. ARGV: fence value, then per view: account, view JSON, pd to
// list it at ('' = unlist). Returns 0, writing nothing, when the lease holds another value (or none).
const WRITE_FENCED = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
for i = 2, #ARGV, 3 do
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
  if ARGV[i + 2] ~= '' then redis.call('ZADD', KEYS[3], ARGV[i + 2], ARGV[i])
  else redis.call('ZREM', KEYS[3], ARGV[i]) end
end
return 1`;

/** views per round trip of `RiskStore.write` (a view is about 1-2 KB of JSON) */
export const VIEWS_PER_WRITE = 2_000;

export class RiskStore {
  constructor(
    private readonly redis: Redis,
    private readonly keys: Keyspace,
    private readonly shards: number,
    /** pd at or above which an account is listed at risk */
    private readonly atRiskMinPd: number,
  ) {}

  /**
   * Write one shard's fresh views, `VIEWS_PER_WRITE` to a round trip (a rebuild writes every account the
   * shard owns: one command for a million views would pass Redis's limit on a client's query buffer); with a
   * `fence`, each round trip atomically and only while the fence holds (false, and nothing more written, once
   * it does not: a writer that lost the shard's lease never replaces the new owner's views).
   */
  async write(shard: number, views: readonly RiskView[], fence?: WriteFence): Promise<boolean> {
    for (let i = 0; i < views.length; i += VIEWS_PER_WRITE)
      if (!(await this.writeChunk(shard, views.slice(i, i + VIEWS_PER_WRITE), fence))) return false;
    return true;
  }

  private async writeChunk(shard: number, views: readonly RiskView[], fence?: WriteFence): Promise<boolean> {
    if (views.length === 0) return true;
    if (fence) {
      const argv: string[] = [fence.value];
      for (const v of views)
        argv.push(
          v.account,
          JSON.stringify(v),
          v.pd !== null && v.pd >= this.atRiskMinPd ? String(v.pd) : '',
        );
      // the arguments as one array (a spread call overflows the stack with many views)
      const keys = [fence.key, this.keys.risk(shard), this.keys.atRisk(shard)];
      return Number(await this.redis.call('EVAL', [WRITE_FENCED, keys.length, ...keys, ...argv])) === 1;
    }
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
    return true;
  }

  async get(account: string): Promise<RiskView | undefined> {
    const raw = await this.redis.hget(this.keys.risk(shardOf(account, this.shards)), account);
    return raw ? (JSON.parse(raw) as RiskView) : undefined;
  }

  /** Stored view JSON of many accounts (null = never evaluated), in the order asked, duplicates removed. */
  async getManyRaw(accounts: readonly string[]): Promise<{ accounts: string[]; raw: (string | null)[] }> {
    const unique = [...new Set(accounts)];
    const byShard = new Map<number, number[]>();
    unique.forEach((a, i) => {
      const s = shardOf(a, this.shards);
      const list = byShard.get(s) ?? [];
      list.push(i);
      byShard.set(s, list);
    });
    const raw = new Array<string | null>(unique.length).fill(null);
    const pipe = this.redis.pipeline();
    const order = [...byShard.entries()];
    for (const [s, idx] of order) pipe.hmget(this.keys.risk(s), ...idx.map((i) => unique[i] as string));
    const replies = (await pipe.exec()) ?? [];
    order.forEach(([, idx], k) => {
      const [err, values] = replies[k] ?? [null, []];
      if (err) throw err;
      (values as (string | null)[]).forEach((v, j) => {
        raw[idx[j] as number] = v;
      });
    });
    return { accounts: unique, raw };
  }

  /** Views of many accounts, in the order asked; `missing` lists those never evaluated. */
  async getMany(accounts: readonly string[]): Promise<{ results: RiskView[]; missing: string[] }> {
    const { accounts: unique, raw } = await this.getManyRaw(accounts);
    const results: RiskView[] = [];
    const missing: string[] = [];
    raw.forEach((v, i) => {
      if (v) results.push(JSON.parse(v) as RiskView);
      else missing.push(unique[i] as string);
    });
    return { results, missing };
  }

  /** The `{results, missing}` response body built from the stored JSON without re-parsing it. */
  async getManyJson(accounts: readonly string[]): Promise<string> {
    const { accounts: unique, raw } = await this.getManyRaw(accounts);
    const found: string[] = [];
    const missing: string[] = [];
    raw.forEach((v, i) => {
      if (v) found.push(v);
      else missing.push(unique[i] as string);
    });
    return `{"results":[${found.join(',')}],"missing":${JSON.stringify(missing)}}`;
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
