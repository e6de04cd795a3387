/**
 * vitest global setup: find (or start) the Redis the integration tests use, and hand its URL to every
 * test file through `inject('redisUrl')`.
 */
import type { TestProject } from 'vitest/node';
import { ensureRedis, type RedisHandle } from '../src/redis/ensure-redis.js';

let handle: RedisHandle | undefined;

export async function setup(project: TestProject): Promise<void> {
  handle = await ensureRedis();
  if (handle.source === 'private')
    console.log(`[preempt tests] started a private redis-server at ${handle.url}`);
  project.provide('redisUrl', handle.url);
}

export async function teardown(): Promise<void> {
  await handle?.stop();
}

declare module 'vitest' {
  export interface ProvidedContext {
    redisUrl: string;
  }
}
