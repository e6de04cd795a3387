import { Queue, QueueEvents, Worker } from 'bullmq';
import { afterEach, describe, expect, it } from 'vitest';
import { connect, deletePrefix, freshPrefix, redisUrl } from './helpers/redis.js';

describe('Redis test harness', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  it('runs a BullMQ job end to end against the real Redis, under a fresh prefix that is deleted after', async () => {
    const prefix = freshPrefix('harness');
    const connection = { url: redisUrl(), maxRetriesPerRequest: null };
    const queue = new Queue('echo', { prefix, connection });
    const events = new QueueEvents('echo', { prefix, connection });
    const worker = new Worker('echo', async (job) => ({ doubled: (job.data as { n: number }).n * 2 }), {
      prefix,
      connection,
    });
    const redis = connect();
    cleanups.push(async () => {
      await worker.close();
      await events.close();
      await queue.close();
      await deletePrefix(redis, prefix);
      expect(await redis.keys(`${prefix}*`)).toEqual([]);
      redis.disconnect();
    });
    await events.waitUntilReady();
    const job = await queue.add('double', { n: 21 });
    const result = await job.waitUntilFinished(events, 30_000);
    expect(result).toEqual({ doubled: 42 });
    expect((await redis.keys(`${prefix}*`)).length).toBeGreaterThan(0);
  });
});
