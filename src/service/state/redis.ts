/**
 * Redis connections by role. Request paths and producers fail fast when Redis is down (no offline
 * queue, no retry, no resending of a command in flight when the connection dropped), so a client gets a
 * 503 at once instead of a hung request or a write applied twice; workers and the evaluator wait for Redis
 * to come back (BullMQ's blocking-connection settings).
 */
import { Redis } from 'ioredis';
import { RedisUnavailableError, redactUrl } from '../../redis/ensure-redis.js';

export type RedisRole = 'fail-fast' | 'wait';

/** ms between reconnection attempts, capped */
const reconnectDelay = (attempt: number): number => Math.min(200 * 2 ** Math.min(attempt, 4), 3000);

export function createRedis(url: string, role: RedisRole, name = 'preempt'): Redis {
  const client =
    role === 'fail-fast'
      ? new Redis(url, {
          lazyConnect: true,
          connectionName: name,
          enableOfflineQueue: false,
          // a command in flight when the connection drops fails at once (ioredis rejects its queue on the
          // first reconnection attempt when this is 0) instead of being sent again on reconnect: Redis may
          // have run it, and an append whose reply was lost would be written twice. (Setting only
          // autoResendUnfulfilledCommands: false would leave such a command's promise pending forever.)
          maxRetriesPerRequest: 0,
          connectTimeout: 3000,
          retryStrategy: reconnectDelay,
        })
      : new Redis(url, {
          lazyConnect: true,
          connectionName: name,
          maxRetriesPerRequest: null,
          enableReadyCheck: true,
          retryStrategy: reconnectDelay,
        });
  // errors surface on the commands themselves; this only stops ioredis printing unhandled-error noise
  client.on('error', () => {});
  return client;
}

/** Connect (at boot) and fail with a clear message when Redis does not answer. */
export async function connectRedis(url: string, role: RedisRole, name?: string): Promise<Redis> {
  const client = createRedis(url, role, name);
  try {
    await client.connect();
    await client.ping();
  } catch (e) {
    client.disconnect();
    throw new RedisUnavailableError(`Redis at ${redactUrl(url)} is unreachable: ${(e as Error).message}`);
  }
  return client;
}
