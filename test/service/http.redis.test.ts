/**
 * The API over real HTTP (@hono/node-server on port 0): NDJSON ingest, JSON errors, the body limit on a
 * streamed body, no secrets in the logs, and a graceful close that finishes what is in flight.
 */
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { KeyStore, mintKey } from '../../src/service/auth/keys.js';
import { configFor } from '../../src/service/config.js';
import { type ApiHandle, startApi } from '../../src/service/runtime.js';
import { connect, deletePrefix, freshPrefix, redisUrl } from '../helpers/redis.js';
import { instrument, mark, ndjson, T0 } from './events-fixtures.js';
import { testModelLoader } from './test-model.js';

const redis = connect();
const prefix = freshPrefix('svc-http');
const lines: string[] = [];
const log = pino(
  { level: 'info', redact: { paths: ['authorization', '*.authorization'], censor: '[redacted]' } },
  new Writable({
    write(chunk, _enc, done) {
      lines.push(String(chunk));
      done();
    },
  }),
);
const writer = mintKey(['events:write']);
let api: ApiHandle;

afterAll(async () => {
  await deletePrefix(redis, prefix);
  redis.disconnect();
});

describe('real HTTP', () => {
  it('serves the API on a port', async () => {
    const config = configFor({
      PREEMPT_PREFIX: prefix,
      REDIS_URL: redisUrl(),
      PORT: 0,
      HOST: '127.0.0.1',
      PREEMPT_BODY_LIMIT_BYTES: 2048,
    });
    api = await startApi(config, {
      log,
      loader: testModelLoader,
      keys: KeyStore.fromRecords([writer.record]),
    });
    const base = `http://127.0.0.1:${api.port}`;
    expect(await (await fetch(`${base}/healthz`)).json()).toEqual({ status: 'ok' });

    const ok = await fetch(`${base}/v1/events`, {
      method: 'POST',
      headers: { authorization: `Bearer ${writer.key}`, 'content-type': 'application/x-ndjson' },
      body: ndjson([instrument(), mark(100, T0 + 1)]),
    });
    expect(await ok.json()).toMatchObject({ accepted: 2 });
    expect(ok.headers.get('x-request-id')).toBeTruthy();

    const bad = await fetch(`${base}/v1/events`, {
      method: 'POST',
      headers: { authorization: `Bearer ${writer.key}`, 'content-type': 'application/json' },
      body: JSON.stringify([{ type: 'mark', ts: T0, symbol: 'BTC-PERP' }]),
    });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({
      code: 'INVALID_EVENT',
      index: 0,
      field: 'price',
      requestId: bad.headers.get('x-request-id'),
    });

    // a streamed body (no content-length) over the limit is cut off with 413
    const big = new ReadableStream({
      start(controller) {
        for (let i = 0; i < 10; i++)
          controller.enqueue(
            new TextEncoder().encode(`${JSON.stringify(mark(100, T0 + i))}${' '.repeat(400)}\n`),
          );
        controller.close();
      },
    });
    const tooBig = await fetch(`${base}/v1/events`, {
      method: 'POST',
      headers: { authorization: `Bearer ${writer.key}`, 'content-type': 'application/x-ndjson' },
      body: big,
      duplex: 'half',
    } as RequestInit);
    expect(tooBig.status).toBe(413);
    expect(await redis.xlen(`${prefix}:{ev}:stream`)).toBe(2);

    const scope = await fetch(`${base}/v1/model`, { headers: { authorization: `Bearer ${writer.key}` } });
    expect(scope.status).toBe(403);
  });

  it('keeps keys out of the logs (only the key id appears)', () => {
    const text = lines.join('');
    expect(text).toContain(writer.record.id);
    expect(text).not.toContain(writer.key);
    // the secret is base64url and may itself contain '_': take everything after the `pk_<id>_` prefix
    expect(text).not.toContain(writer.key.slice(`pk_${writer.record.id}_`.length));
  });

  it('closes gracefully: stops accepting, then frees the port', async () => {
    const base = `http://127.0.0.1:${api.port}`;
    await api.close();
    await expect(fetch(`${base}/healthz`)).rejects.toThrow();
  });
});
