/**
 * Reduce-only restrictions in Redis. Per shard, a hash account -> the evaluator's latest restriction
 * record (what it last decided and enqueued: on/off, version, since, until), read by the API's risk view
 * and by the workers (a job older than the record's version is superseded); and a hash account -> the
 * last version a worker applied at the venue, advanced only forwards (an older job never overwrites a newer
 * state, whichever worker runs it).
 */
import type { Redis } from 'ioredis';
import { type Keyspace, shardOf } from './keys.js';

export interface RestrictionRecord {
  account: string;
  reduceOnly: boolean;
  /** restriction changes so far (odd = on); 0 = never restricted */
  version: number;
  /** ms, event time of the change */
  since: number;
  /** ms, event time: when a flat account's hold lapses; null while it holds a position or is unrestricted */
  until: number | null;
  reason: string;
  /** the job that delivers this change */
  jobId: string;
}

/** Advance account's applied version to ARGV[2] if it is newer; returns 1 if advanced, 0 if not. */
const ADVANCE = `
local cur = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if tonumber(ARGV[2]) > cur then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  return 1
end
return 0`;

/** Per (account, version, record) triple of ARGV: set the record unless the stored one has a newer version. */
const WRITE_NEWER = `
for i = 1, #ARGV, 3 do
  local cur = redis.call('HGET', KEYS[1], ARGV[i])
  if not cur or cjson.decode(cur).version <= tonumber(ARGV[i + 1]) then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 2])
  end
end
return 0`;

export class RestrictionStore {
  constructor(
    private readonly redis: Redis,
    private readonly keys: Keyspace,
    private readonly shards: number,
  ) {}

  /**
   * Overwrite records of one shard (idempotent), keeping a record only if it is not older than the stored
   * one (a rebuild re-making an older version on a pending entry, under a changed policy, must not take
   * the record back: reconciliation compares against the newest version enqueued).
   */
  async write(shard: number, records: readonly RestrictionRecord[]): Promise<void> {
    if (records.length === 0) return;
    const latest = new Map<string, RestrictionRecord>();
    for (const r of records) {
      const seen = latest.get(r.account);
      if (!seen || r.version >= seen.version) latest.set(r.account, r);
    }
    await this.redis.eval(
      WRITE_NEWER,
      1,
      this.keys.restrictions(shard),
      ...[...latest.values()].flatMap((r) => [r.account, String(r.version), JSON.stringify(r)]),
    );
  }

  async get(account: string): Promise<RestrictionRecord | undefined> {
    const raw = await this.redis.hget(this.keys.restrictions(shardOf(account, this.shards)), account);
    return raw ? (JSON.parse(raw) as RestrictionRecord) : undefined;
  }

  /** Every record of one shard. */
  async all(shard: number): Promise<Map<string, RestrictionRecord>> {
    const raw = await this.redis.hgetall(this.keys.restrictions(shard));
    return new Map(Object.entries(raw).map(([a, v]) => [a, JSON.parse(v) as RestrictionRecord]));
  }

  /** The last version applied at the venue (0 = none). */
  async applied(account: string): Promise<number> {
    const v = await this.redis.hget(this.keys.restrictionsApplied(shardOf(account, this.shards)), account);
    return v === null ? 0 : Number(v);
  }

  /** Record `version` as applied if it is newer than the last; false if a newer one was applied already. */
  async markApplied(account: string, version: number): Promise<boolean> {
    const key = this.keys.restrictionsApplied(shardOf(account, this.shards));
    return (await this.redis.eval(ADVANCE, 1, key, account, String(version))) === 1;
  }
}
