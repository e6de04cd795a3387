/**
 * Stateless scoring (vectors, named features, a replayed history) and the model endpoints: status,
 * reload (published to every process), and rules-only mode when no model loads.
 */
import { afterAll, describe, expect, it } from 'vitest';
import {
  F,
  FEATURE_COUNT,
  FEATURE_NAMES,
  FEATURE_NEUTRAL,
  FEATURE_SCHEMA_HASH,
} from '../../src/features/schema.js';
import { ModelHolder } from '../../src/service/model/holder.js';
import { keyspace } from '../../src/service/state/keys.js';
import { connect } from '../helpers/redis.js';
import { deposit, fill, instrument, mark, T0 } from './events-fixtures.js';
import { type Harness, logisticScorer, makeHarness, silent } from './harness.js';

const harnesses: Harness[] = [];
afterAll(async () => {
  for (const h of harnesses) await h.close();
});
async function harness(opts: Parameters<typeof makeHarness>[1] = {}): Promise<Harness> {
  const h = await makeHarness('svc-score', opts);
  harnesses.push(h);
  return h;
}

/** the test model's pd for a margin ratio */
const pdAt = (ratio: number) => 1 / (1 + Math.exp(4 * (Math.log(ratio) - Math.log(3))));

describe('POST /v1/score', () => {
  it('scores feature vectors in schema order', async () => {
    const h = await harness();
    const row = Array.from(FEATURE_NEUTRAL);
    row[F.margin_ratio_log] = Math.log(2);
    const res = await h.call('POST', '/v1/score', {
      key: h.keys['score:read'],
      body: { vectors: [row, Array.from(FEATURE_NEUTRAL)] },
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { pd: number[]; modelVersion: string; schemaHash: string };
    expect(body.pd[0]).toBeCloseTo(pdAt(2), 5);
    expect(body.pd[1]).toBeCloseTo(pdAt(1000), 5); // neutral: no position, ratio 1000
    expect(body).toMatchObject({ modelVersion: 'test@1', schemaHash: FEATURE_SCHEMA_HASH });
  });

  it('scores named features and names a missing one', async () => {
    const h = await harness();
    const named = Object.fromEntries(FEATURE_NAMES.map((n, i) => [n, FEATURE_NEUTRAL[i] ?? 0]));
    named.margin_ratio_log = Math.log(3);
    const ok = await h.call('POST', '/v1/score', {
      key: h.keys['score:read'],
      body: { features: [named], explain: 2 },
    });
    const body = (await ok.json()) as { pd: number[]; explanations: { feature: string }[][] };
    expect(body.pd[0]).toBeCloseTo(0.5, 5);
    expect(body.explanations[0]?.[0]?.feature).toBe('margin_ratio_log');
    const { leverage: _dropped, ...missing } = named;
    const bad = await h.call('POST', '/v1/score', {
      key: h.keys['score:read'],
      body: { features: [missing] },
    });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ code: 'BAD_REQUEST', field: 'features.0.leverage' });
  });

  it('rejects vectors of the wrong width and bodies with two inputs', async () => {
    const h = await harness();
    const short = await h.call('POST', '/v1/score', {
      key: h.keys['score:read'],
      body: { vectors: [[1, 2]] },
    });
    expect(short.status).toBe(400);
    expect(((await short.json()) as { message: string }).message).toContain(
      `expected ${FEATURE_COUNT} features`,
    );
    const two = await h.call('POST', '/v1/score', {
      key: h.keys['score:read'],
      body: { vectors: [], features: [] },
    });
    expect(two.status).toBe(400);
  });

  it('replays a posted history through the feature pipeline and scores its accounts', async () => {
    const h = await harness();
    const events = [
      instrument(),
      mark(100, T0 + 1),
      deposit('x', 150, T0 + 2),
      fill('x', 'buy', 20, 100, T0 + 3),
      mark(95, T0 + 60_000),
    ];
    const res = await h.call('POST', '/v1/score', {
      key: h.keys['score:read'],
      body: { history: { events, accounts: ['x'] } },
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { rows: string[]; pd: number[] };
    expect(body.rows).toEqual(['x']);
    // equity 150 + (95 - 100) * 20 = 50; MM = 20 * 95 * 0.01 = 19
    expect(body.pd[0]).toBeCloseTo(pdAt(50 / 19), 4);
    const bad = await h.call('POST', '/v1/score', {
      key: h.keys['score:read'],
      body: { history: { events: [instrument(), { type: 'mark', ts: T0, symbol: 'BTC-PERP', price: 0 }] } },
    });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ code: 'INVALID_EVENT', index: 1, field: 'price' });
  });
});

describe('model endpoints', () => {
  it('reports the model, reloads it, and tells every process to reload', async () => {
    let version = 0;
    const h = await harness({
      loader: async () =>
        logisticScorer(
          FEATURE_NAMES,
          'margin_ratio_log',
          4,
          Math.log(3),
          `test@${++version}`,
          FEATURE_SCHEMA_HASH,
        ),
    });
    const info = (await (await h.call('GET', '/v1/model', { key: h.keys['score:read'] })).json()) as Record<
      string,
      unknown
    >;
    expect(info).toMatchObject({
      mode: 'model',
      version: 'test@1',
      schemaHash: FEATURE_SCHEMA_HASH,
      backend: 'cpu',
    });
    expect((info.featureNames as string[]).length).toBe(FEATURE_COUNT);

    const sub = connect();
    const heard = new Promise<string>((resolve) => sub.on('message', (channel) => resolve(channel)));
    await sub.subscribe(keyspace(h.prefix).modelReload);
    const reloaded = await h.call('POST', '/v1/model/reload');
    expect(await reloaded.json()).toMatchObject({ mode: 'model', version: 'test@2' });
    expect(await heard).toBe(keyspace(h.prefix).modelReload);
    sub.disconnect();
  });

  it('without a usable model: rules-only, visible, /v1/score answers 503 and /readyz is not ready', async () => {
    const h = await harness({
      loader: async () => {
        throw new Error('no model at models/none');
      },
    });
    const info = await (await h.call('GET', '/v1/model', { key: h.keys['score:read'] })).json();
    expect(info).toMatchObject({ mode: 'rules-only', version: null, error: 'no model at models/none' });
    const score = await h.call('POST', '/v1/score', { key: h.keys['score:read'], body: { vectors: [] } });
    expect(score.status).toBe(503);
    expect(await score.json()).toMatchObject({ code: 'MODEL_UNAVAILABLE' });
    const ready = await h.call('GET', '/readyz', { key: null });
    expect(ready.status).toBe(503);
    expect(await ready.json()).toMatchObject({ ready: false, redis: true, model: 'rules-only' });
  });

  it('refuses a model trained on another feature schema, keeping the previous one', async () => {
    let hash = FEATURE_SCHEMA_HASH;
    const holder = new ModelHolder(
      'm',
      async () => logisticScorer(FEATURE_NAMES, 'leverage', 1, 1, `v-${hash.slice(0, 4)}`, hash),
      silent,
      FEATURE_SCHEMA_HASH,
    );
    expect((await holder.reload()).mode).toBe('model');
    hash = 'another-hash';
    const status = await holder.reload();
    expect(status.mode).toBe('model');
    expect(status.info?.schemaHash).toBe(FEATURE_SCHEMA_HASH);
    expect(status.error).toContain('another-hash');
    await holder.close();
  });
});
