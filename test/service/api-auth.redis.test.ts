/**
 * Auth, errors, limits and the OpenAPI document, through app.request() against a real Redis.
 */

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_QUEUES_PATH } from '../../src/service/api/admin-queues.js';
import { openApiPath } from '../../src/service/api/openapi.js';
import { createApp } from '../../src/service/app.js';
import { KeyStore, type Scope } from '../../src/service/auth/keys.js';
import { createMetrics } from '../../src/service/metrics.js';
import { connectRedis } from '../../src/service/state/redis.js';
import { redisUrl } from '../helpers/redis.js';
import { type Harness, makeHarness, silent } from './harness.js';

let h: Harness;
beforeAll(async () => {
  h = await makeHarness('svc-auth', { env: { PREEMPT_BODY_LIMIT_BYTES: 4096, PREEMPT_RATE_LIMIT: 0 } });
});
afterAll(async () => {
  await h.close();
});

/** a key that is valid but lacks the route's scope */
function wrongScopeKey(scope: Scope): string {
  if (scope === 'score:read') return h.keys['events:write'];
  if (scope === 'events:write') return h.keys['score:read'];
  return h.keys.all; // score:read + events:write, not admin
}

describe('authentication and scopes', () => {
  it('every scoped route answers 401 without a key and 403 with a key lacking its scope', async () => {
    const scoped = h.service.routes.filter((r) => r.spec.scope !== null);
    expect(scoped.length).toBeGreaterThanOrEqual(8);
    for (const { spec } of scoped) {
      const path = spec.path.replace(':id', 'acct-1');
      const missing = await h.call(spec.method.toUpperCase(), path, { key: null, body: {} });
      expect(missing.status, `${spec.method} ${spec.path} without key`).toBe(401);
      expect(missing.headers.get('www-authenticate')).toContain('Bearer');
      const body = (await missing.json()) as { code: string; requestId: string };
      expect(body.code).toBe('UNAUTHORIZED');
      expect(body.requestId).toBe(missing.headers.get('x-request-id'));

      const bad = await h.call(spec.method.toUpperCase(), path, {
        key: 'pk_0123456789abcdef_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA',
      });
      expect(bad.status, `${spec.method} ${spec.path} with an unknown key`).toBe(401);

      const wrong = await h.call(spec.method.toUpperCase(), path, {
        key: wrongScopeKey(spec.scope as Scope),
        body: {},
      });
      expect(wrong.status, `${spec.method} ${spec.path} with the wrong scope`).toBe(403);
      expect(((await wrong.json()) as { code: string }).code).toBe('FORBIDDEN');
    }
  });

  it('rejects a malformed Authorization header and a tampered secret', async () => {
    const basic = await h.service.app.request('/v1/model', { headers: { authorization: 'Basic abc' } });
    expect(basic.status).toBe(401);
    const key = h.keys['score:read'];
    const tampered = `${key.slice(0, -1)}${key.endsWith('A') ? 'B' : 'A'}`;
    expect((await h.call('GET', '/v1/model', { key: tampered })).status).toBe(401);
    expect((await h.call('GET', '/v1/model', { key })).status).toBe(200);
  });

  it('admin holds every scope', async () => {
    expect((await h.call('GET', '/v1/model', { key: h.keys.admin })).status).toBe(200);
  });

  it('public operational routes need no key', async () => {
    expect((await h.call('GET', '/healthz', { key: null })).status).toBe(200);
    const ready = await h.call('GET', '/readyz', { key: null });
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ ready: true, redis: true, model: 'model' });
    const metrics = await h.call('GET', '/metrics', { key: null });
    expect(await metrics.text()).toContain('preempt_http_request_duration_seconds');
  });
});

describe('errors and limits', () => {
  it('unknown routes answer a JSON 404 with a request id', async () => {
    const res = await h.call('GET', '/v1/nope');
    expect(res.status).toBe(404);
    const body = (await res.json()) as { code: string; requestId: string };
    expect(body.code).toBe('NOT_FOUND');
    expect(typeof body.requestId).toBe('string');
    expect(body.requestId.length).toBeGreaterThan(0);
  });

  it('bodies over the limit get 413 and write nothing', async () => {
    const big = JSON.stringify([{ type: 'mark', ts: 1, symbol: 'X', price: 1, pad: 'x'.repeat(5000) }]);
    const res = await h.call('POST', '/v1/events', { raw: big, key: h.keys['events:write'] });
    expect(res.status).toBe(413);
    expect(((await res.json()) as { code: string }).code).toBe('PAYLOAD_TOO_LARGE');
  });

  it('invalid JSON bodies and invalid fields name the field', async () => {
    const res = await h.call('POST', '/v1/risk/query', { raw: '{not json', key: h.keys['score:read'] });
    expect(res.status).toBe(400);
    const res2 = await h.call('POST', '/v1/risk/query', {
      body: { accounts: [] },
      key: h.keys['score:read'],
    });
    expect(res2.status).toBe(400);
    expect(await res2.json()).toMatchObject({ code: 'BAD_REQUEST', field: 'accounts' });
  });

  it('a page cursor Redis would refuse is a 400 naming `before`, not a 500', async () => {
    for (const before of ['0-0', '99999999999999999999-0', '1-99999999999999999999', 'abc']) {
      const res = await h.call('GET', `/v1/actions?before=${before}`);
      expect(res.status, before).toBe(400);
      expect(await res.json()).toMatchObject({ code: 'BAD_REQUEST', field: 'before' });
    }
    expect((await h.call('GET', '/v1/actions?before=18446744073709551615-0')).status).toBe(200);
  });

  it('per-key rate limits hold across two API instances sharing Redis', async () => {
    const limited = await makeHarness('svc-rate', {
      env: { PREEMPT_RATE_LIMIT: 3, PREEMPT_RATE_WINDOW_MS: 600_000 },
    });
    const redis2 = await connectRedis(redisUrl(), 'fail-fast');
    try {
      // a second API process: same Redis, same keys file contents
      const second = createApp({
        config: limited.config,
        redis: redis2,
        keys: KeyStore.fromRecords(limited.keyRecords),
        model: limited.model,
        metrics: createMetrics(),
        log: silent,
      });
      const key = limited.keys['score:read'];
      const statuses: number[] = [];
      for (let i = 0; i < 4; i++) {
        const app = i % 2 === 0 ? limited.service.app : second.app;
        const res = await app.request('/v1/model', { headers: { authorization: `Bearer ${key}` } });
        statuses.push(res.status);
        if (res.status === 429) expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
      }
      expect(statuses).toEqual([200, 200, 200, 429]);
      // another key is not affected
      const other = await limited.call('GET', '/v1/model', { key: limited.keys.admin });
      expect(other.status).toBe(200);
    } finally {
      redis2.disconnect();
      await limited.close();
    }
  });
});

describe('OpenAPI', () => {
  it('documents exactly the routes the app serves, with their scopes', async () => {
    const res = await h.call('GET', '/openapi.json', { key: null });
    expect(res.status).toBe(200);
    const doc = (await res.json()) as {
      openapi: string;
      paths: Record<string, Record<string, { 'x-required-scope'?: string }>>;
    };
    expect(doc.openapi).toBe('3.1.0');
    const served = new Set(
      h.service.app.routes
        // bull-board's own page and API under /admin/queues are a third-party UI, not preempt's API
        .filter((r) => r.method !== 'ALL' && r.path !== '/*' && !r.path.startsWith(ADMIN_QUEUES_PATH))
        .map((r) => `${r.method.toLowerCase()} ${openApiPath(r.path)}`),
    );
    const documented = new Set(
      Object.entries(doc.paths).flatMap(([p, ops]) => Object.keys(ops).map((m) => `${m} ${p}`)),
    );
    expect([...documented].sort()).toEqual([...served].sort());
    for (const path of [
      '/v1/events',
      '/v1/accounts/{id}/risk',
      '/v1/risk/query',
      '/v1/accounts/at-risk',
      '/v1/score',
      '/v1/model',
      '/v1/model/reload',
      '/v1/actions',
    ])
      expect(doc.paths[path], path).toBeDefined();
    expect(doc.paths['/v1/model/reload']?.post?.['x-required-scope']).toBe('admin');
    const html = await (await h.call('GET', '/docs', { key: null })).text();
    expect(html).toContain('/v1/accounts/{id}/risk');
  });
});
