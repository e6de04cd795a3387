/**
 * Shard snapshots and the trimming of the event log in Redis. A shard's snapshot is one hash under the
 * shard's hash tag (`{s<n>}`, like its lease), replaced whole by a script that first checks the lease value;
 * the log is trimmed (XTRIM MINID) by a script that also records the trim point under the log's hash tag
 * (`{ev}`), only ever forwards and never within the retention period, so that concurrent trimmers are
 * harmless and a restoring shard can tell whether the entries it needs are still there.
 */
import type { Redis } from 'ioredis';
import { parseMeta, refusal, type SnapshotMeta } from '../evaluator/snapshot.js';
import { compareIds, shardGroups } from './event-log.js';
import type { Keyspace } from './keys.js';

// KEYS: lease, snapshot. ARGV: lease value, entry, meta JSON, data. 0 (nothing written) without the lease.
const WRITE = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[2], 'entry', ARGV[2], 'meta', ARGV[3], 'data', ARGV[4])
return 1`;

const LUA_IDS = `
local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
local function after(a, b)
  local ams, aseq = parse(a)
  local bms, bseq = parse(b)
  return ams > bms or (ams == bms and aseq > bseq)
end`;

// KEYS: stream, trim marker. ARGV: the id to trim below, retention ms. Trims below the lesser of that id
// and (server time - retention); only forwards; the marker moves only when entries were deleted. Returns
// {entries deleted, the trim point now}.
const TRIM = `${LUA_IDS}
local t = redis.call('TIME')
local keepFrom = string.format('%d-0', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - tonumber(ARGV[2]))
local target = ARGV[1]
if after(target, keepFrom) then target = keepFrom end
local cur = redis.call('GET', KEYS[2]) or '0-0'
if not after(target, cur) then return {0, cur} end
local n = redis.call('XTRIM', KEYS[1], 'MINID', target)
-- the point records that entries below it may be missing: only once some were
if n == 0 then return {0, cur} end
redis.call('SET', KEYS[2], target)
return {n, target}`;

/** Replace shard `shard`'s snapshot, only while its lease holds `leaseValue`; false (nothing written) if not. */
export async function writeSnapshot(
  redis: Redis,
  keys: Keyspace,
  shard: number,
  leaseValue: string,
  meta: SnapshotMeta,
  data: Buffer,
): Promise<boolean> {
  const reply = await redis.eval(
    WRITE,
    2,
    keys.shardLease(shard),
    keys.shardSnapshot(shard),
    leaseValue,
    meta.entry,
    JSON.stringify(meta),
    data,
  );
  return Number(reply) === 1;
}

/** Shard `shard`'s snapshot metadata (undefined: none, or unreadable). */
export async function readSnapshotMeta(
  redis: Redis,
  keys: Keyspace,
  shard: number,
): Promise<SnapshotMeta | undefined> {
  return parseMeta(await redis.hget(keys.shardSnapshot(shard), 'meta'));
}

/** Shard `shard`'s snapshot: its metadata (undefined if unreadable) and payload, or undefined if none. */
export async function readSnapshot(
  redis: Redis,
  keys: Keyspace,
  shard: number,
): Promise<{ meta: SnapshotMeta | undefined; data: Buffer | null } | undefined> {
  const [meta, data] = await redis.hmgetBuffer(keys.shardSnapshot(shard), 'meta', 'data');
  if (!meta && !data) return undefined;
  return { meta: parseMeta(meta?.toString('utf8')), data: data ?? null };
}

/** The id below which the log was trimmed ('0-0': never). */
export async function logTrimPoint(redis: Redis, keys: Keyspace): Promise<string> {
  return (await redis.get(keys.logTrimmed)) ?? '0-0';
}

/**
 * Trim the log below `minId`, keeping at least `retentionMs` of entries (by their ids' server time);
 * only forwards. Returns the entries deleted and the trim point after the call.
 */
export async function trimLogBelow(
  redis: Redis,
  keys: Keyspace,
  minId: string,
  retentionMs: number,
): Promise<{ deleted: number; point: string }> {
  const [deleted, point] = (await redis.eval(TRIM, 2, keys.stream, keys.logTrimmed, minId, retentionMs)) as [
    number,
    string,
  ];
  return { deleted: Number(deleted), point: String(point) };
}

/** Every shard's committed entry (its consumer group's last-delivered id), by shard. */
async function committedPositions(redis: Redis, keys: Keyspace): Promise<Map<number, string>> {
  const out = new Map<number, string>();
  for (const [shard, f] of await shardGroups(redis, keys)) out.set(shard, String(f.get('last-delivered-id')));
  return out;
}

/**
 * Where the log may be trimmed: the oldest entry among the shards' snapshots, when every shard (0 to
 * `shards` - 1) has one this evaluator would restore (same format, shard count, policy and parameters) at
 * or before its committed entry. Each shard then needs only the entries after its snapshot; trimming below
 * the oldest one keeps them all. A shard without a usable snapshot holds trimming back (`reason`).
 */
export async function safeTrimPoint(
  redis: Redis,
  keys: Keyspace,
  shards: number,
  policyHash: string,
): Promise<{ point: string } | { point: null; reason: string }> {
  const committed = await committedPositions(redis, keys);
  let oldest: string | null = null;
  for (let shard = 0; shard < shards; shard++) {
    const meta = await readSnapshotMeta(redis, keys, shard);
    const why = refusal(meta, { shard, shards, policyHash });
    if (why || !meta) return { point: null, reason: `shard ${shard}: ${why ?? 'no snapshot'}` };
    const pos = committed.get(shard);
    if (pos === undefined || compareIds(meta.entry, pos) > 0)
      return {
        point: null,
        reason: `shard ${shard}: snapshot ${meta.entry} is past its committed entry ${pos}`,
      };
    if (oldest === null || compareIds(meta.entry, oldest) < 0) oldest = meta.entry;
  }
  return oldest === null ? { point: null, reason: 'no shards' } : { point: oldest };
}
