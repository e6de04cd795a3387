/**
 * Per-test Redis isolation: each test gets its own key prefix (and so its own BullMQ queue namespace) and
 * deletes every key under it afterwards.
 */
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { inject } from 'vitest';

export function redisUrl(): string {
  return inject('redisUrl');
}

export function freshPrefix(label: string): string {
  return `preempt-test:${label}:${randomBytes(6).toString('hex')}`;
}

export function connect(): Redis {
  return new Redis(redisUrl(), { maxRetriesPerRequest: null });
}

/** Delete every key that starts with `prefix`; returns how many were deleted. */
export async function deletePrefix(redis: Redis, prefix: string): Promise<number> {
  let deleted = 0;
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
    cursor = next;
    if (keys.length > 0) deleted += await redis.del(...keys);
  } while (cursor !== '0');
  return deleted;
}
