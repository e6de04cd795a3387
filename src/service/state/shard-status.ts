/**
 * A shard's status in Redis (`{s<n>}:status`, a hash: the last entry its evaluator applied and wrote, the
 * event clock there, the consumer, when), written at the end of each flush that acknowledged entries. Under a
 * fence it is written, like the views and the snapshot, in one script with a check of the shard's lease (same
 * hash tag, so it also works on a cluster): a runner that lost its lease (a paused process coming back) never
 * replaces the new owner's status with an older entry.
 */
import type { Redis } from 'ioredis';
import type { Keyspace } from './keys.js';
import type { WriteFence } from './risk-store.js';

export interface ShardStatusRecord {
  lastEntryId: string;
  /** ms, event time */
  clock: number;
  consumer: string;
  /** ms, wall clock */
  updatedAt: number;
}

// KEYS: fence (lease), status hash. ARGV: fence value, lastEntryId, clock, consumer, updatedAt. Returns 0,
// writing nothing, when the lease holds another value (or none).
const WRITE_FENCED = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[2], 'lastEntryId', ARGV[2], 'clock', ARGV[3], 'consumer', ARGV[4], 'updatedAt', ARGV[5])
return 1`;

/**
 * Write shard `shard`'s status; with a `fence`, only while it holds (false, nothing written, when it does
 * not). Without one, unfenced (true).
 */
export async function writeShardStatus(
  redis: Redis,
  keys: Keyspace,
  shard: number,
  status: ShardStatusRecord,
  fence?: WriteFence,
): Promise<boolean> {
  const fields = {
    lastEntryId: status.lastEntryId,
    clock: String(status.clock),
    consumer: status.consumer,
    updatedAt: String(status.updatedAt),
  };
  if (!fence) {
    await redis.hset(keys.shardStatus(shard), fields);
    return true;
  }
  const reply = await redis.eval(
    WRITE_FENCED,
    2,
    fence.key,
    keys.shardStatus(shard),
    fence.value,
    fields.lastEntryId,
    fields.clock,
    fields.consumer,
    fields.updatedAt,
  );
  return Number(reply) === 1;
}
