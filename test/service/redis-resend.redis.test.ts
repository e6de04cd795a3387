/**
 * A write whose reply is lost (the connection drops after Redis ran it) must not be sent again by the
 * client on reconnect: an event without an id would be in the log twice. The request paths' fail-fast
 * client reports the error instead (the API answers 503 and the venue decides; ids make a resend safe).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { parseEvent } from '../../src/events/validate.js';
import { appendEvents } from '../../src/service/state/event-log.js';
import { keyspace } from '../../src/service/state/keys.js';
import { connectRedis } from '../../src/service/state/redis.js';
import { lossyRedisProxy } from '../helpers/lossy-redis-proxy.js';
import { connect, deletePrefix, freshPrefix, redisUrl } from '../helpers/redis.js';
import { T0 } from './events-fixtures.js';
import { eventually } from './wait.js';

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

describe('the fail-fast Redis client of the request paths', () => {
  it('does not resend an append whose reply was lost: the event is in the log once, and the caller sees an error', async () => {
    const proxy = await lossyRedisProxy(redisUrl());
    cleanup.push(() => proxy.close());
    const prefix = freshPrefix('resend');
    const keys = keyspace(prefix);
    const admin = connect();
    cleanup.push(async () => {
      await deletePrefix(admin, prefix);
      admin.disconnect();
    });
    const api = await connectRedis(proxy.url, 'fail-fast', 'resend-test');
    cleanup.push(() => api.disconnect());
    await admin.sadd(keys.instruments, 'BTC-PERP');
    const parsed = parseEvent({ type: 'deposit', ts: T0, account: 'a', amount: 1000 });
    if (!parsed.ok) throw new Error('fixture');
    proxy.arm('XADD');
    await expect(
      appendEvents(api, keys, [parsed.event], { dedupTtlMs: 60_000, partial: false }),
    ).rejects.toThrow();
    // Redis ran it once; once the client is connected again nothing more arrives
    await eventually(
      () => api.status,
      (s) => s === 'ready',
      'the client to reconnect',
    );
    expect(await api.ping()).toBe('PONG');
    expect(await admin.xlen(keys.stream)).toBe(1);
  });
});
