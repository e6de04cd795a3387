/**
 * A write whose reply is lost (the connection drops after Redis ran it) must not be sent again by the
 * client on reconnect: an event without an id would be in the log twice. The request paths' fail-fast
 * client reports the error instead (the API answers 503 and the venue decides; ids make a resend safe).
 */
import net from 'node:net';
import { URL } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { parseEvent } from '../../src/events/validate.js';
import { appendEvents } from '../../src/service/state/event-log.js';
import { keyspace } from '../../src/service/state/keys.js';
import { connectRedis } from '../../src/service/state/redis.js';
import { connect, deletePrefix, freshPrefix, redisUrl } from '../helpers/redis.js';
import { T0 } from './events-fixtures.js';
import { eventually } from './wait.js';

/** A TCP proxy to Redis that, once armed, runs the next XADD-carrying command but drops its reply and the connection. */
async function lossyProxy() {
  const target = new URL(redisUrl());
  let dropNext = false;
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(target.port || 6379), target.hostname);
    let dropping = false;
    client.on('data', (d) => {
      if (dropNext && d.includes('XADD')) {
        dropping = true;
        dropNext = false;
      }
      upstream.write(d);
    });
    upstream.on('data', (d) => {
      if (dropping) {
        client.destroy();
        upstream.destroy();
      } else client.write(d);
    });
    for (const s of [client, upstream]) s.on('error', () => {});
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const { port } = server.address() as net.AddressInfo;
  const auth = target.password ? `:${target.password}@` : '';
  return {
    url: `redis://${auth}127.0.0.1:${port}${target.pathname}`,
    arm: () => {
      dropNext = true;
    },
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

describe('the fail-fast Redis client of the request paths', () => {
  it('does not resend an append whose reply was lost: the event is in the log once, and the caller sees an error', async () => {
    const proxy = await lossyProxy();
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
    proxy.arm();
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
