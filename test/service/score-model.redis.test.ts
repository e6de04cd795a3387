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
import type { PdScorer } from '../../src/model/types.js';
import { configFor } from '../../src/service/config.js';
import { createMetrics } from '../../src/service/metrics.js';
import { ModelHolder, type ModelStatus } from '../../src/service/model/holder.js';
import { modelHolderFor, startWorker } from '../../src/service/runtime.js';
import { keyspace } from '../../src/service/state/keys.js';
import { connect } from '../helpers/redis.js';
import { deposit, fill, instrument, mark, T0 } from './events-fixtures.js';
import { type Harness, logisticScorer, makeHarness, silent, testModelLoader } from './harness.js';
import { faultyLoader, type ScorerFault } from './runner-kit.js';
import { eventually } from './wait.js';

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

  it('a reload asked for while one is loading runs after it, so it sees a model promoted meanwhile', async () => {
    // the directory holds model v1 until `promoted`; the first load is held after it read the directory
    let onDisk = 'v1';
    let release!: () => void;
    const held = new Promise<void>((r) => {
      release = r;
    });
    let loads = 0;
    const holder = new ModelHolder(
      'm',
      async () => {
        const version = onDisk;
        loads++;
        if (loads === 1) await held;
        return logisticScorer(FEATURE_NAMES, 'leverage', 1, 1, version);
      },
      silent,
    );
    const first = holder.reload();
    await Promise.resolve();
    onDisk = 'v2'; // promoted while the first load runs on what it read before
    const second = holder.reload();
    const third = holder.reload(); // joins the queued one
    release();
    expect((await first).info?.version).toBe('v1');
    expect((await second).info?.version).toBe('v2');
    expect((await third).info?.version).toBe('v2');
    expect(loads).toBe(2);
    expect(holder.status().info?.version).toBe('v2');
    await holder.close();
  });
});

describe('model status while scoring fails', () => {
  const vectors = [Array.from(FEATURE_NEUTRAL)];

  it('reports rules-only with the error and since when, on /v1/model and /readyz, until a scoring works', async () => {
    const fault: ScorerFault = { throwing: 'score worker 0 exited (code 1)' };
    const h = await harness({ loader: faultyLoader(fault) });
    const model = async () =>
      (await (await h.call('GET', '/v1/model', { key: h.keys['score:read'] })).json()) as Record<
        string,
        unknown
      >;
    const t0 = Date.now();
    expect((await h.call('POST', '/v1/score', { body: { vectors } })).status).toBe(500);
    expect((await h.call('POST', '/v1/score', { body: { vectors } })).status).toBe(500);
    const failing = await model();
    expect(failing).toMatchObject({
      mode: 'rules-only',
      version: 'test@1', // still loaded: scored with again, and back to `model` once that works
      error: 'scoring failed: score worker 0 exited (code 1)',
      scoreError: { message: 'score worker 0 exited (code 1)', failures: 2 },
    });
    const since = (failing.scoreError as { since: number }).since;
    expect(since).toBeGreaterThanOrEqual(t0);
    expect(since).toBeLessThanOrEqual(Date.now());
    const ready = await h.call('GET', '/readyz', { key: null });
    expect(ready.status).toBe(503);
    expect(await ready.json()).toMatchObject({
      ready: false,
      model: 'rules-only',
      detail: { modelError: 'scoring failed: score worker 0 exited (code 1)' },
    });
    // bad input is refused before scoring: not a scoring failure, the count stays
    expect((await h.call('POST', '/v1/score', { body: { vectors: [[1]] } })).status).toBe(400);
    expect((await model()).scoreError).toMatchObject({ failures: 2, since });

    fault.throwing = null;
    expect((await h.call('POST', '/v1/score', { body: { vectors } })).status).toBe(200);
    const recovered = await model();
    expect(recovered).toMatchObject({ mode: 'model', version: 'test@1' });
    expect(recovered).not.toHaveProperty('scoreError');
    expect(recovered).not.toHaveProperty('error');
    expect((await h.call('GET', '/readyz', { key: null })).status).toBe(200);
  });

  it('follows the evaluator: rules-only while its scoring throws, as its shard status says, then model', async () => {
    const fault: ScorerFault = { throwing: 'no score worker is running' };
    const h = await harness({ loader: faultyLoader(fault) });
    const worker = await startWorker(h.config, {
      log: silent,
      model: h.model,
      metrics: h.metrics,
      tuning: { blockMs: 100 },
    });
    const post = async (body: unknown[]) =>
      expect((await h.call('POST', '/v1/events', { key: h.keys['events:write'], body })).status).toBe(200);
    try {
      expect(h.model.status().mode).toBe('model');
      await post([
        instrument(),
        mark(100, T0 + 1),
        deposit('a', 1000, T0 + 2),
        fill('a', 'buy', 1, 100, T0 + 3),
      ]);
      const shard = await eventually(
        () => worker.supervisor.status()[0],
        (s) => s?.scoreError !== undefined,
        'the shard to decide rules-only',
      );
      expect(h.model.status()).toMatchObject({
        mode: 'rules-only',
        scoreError: { message: 'no score worker is running' },
      });
      expect(h.model.status().scoreError?.since).toBeLessThanOrEqual(shard?.scoreError?.since ?? 0);

      fault.throwing = null;
      await post([mark(101, T0 + 60_000)]);
      await eventually(
        () => worker.supervisor.status()[0],
        (s) => s?.scoring === 'model',
        'the shard to score again',
      );
      expect(h.model.status().mode).toBe('model');
      expect(h.model.status().scoreError).toBeUndefined();
    } finally {
      await worker.close();
    }
  });

  it('tells onChange of the switch both ways, and a reload starts clean', async () => {
    const fault: ScorerFault = { throwing: 'boom' };
    const changes: ModelStatus[] = [];
    const holder = new ModelHolder('m', faultyLoader(fault), silent, undefined, (s) => changes.push(s));
    await holder.reload();
    const score = () => holder.use((s) => s.score(new Float32Array(FEATURE_NEUTRAL), 1));
    await expect(score()).rejects.toThrow('boom');
    await expect(score()).rejects.toThrow('boom');
    expect(changes.map((c) => [c.mode, c.scoreError?.failures])).toEqual([
      ['model', undefined],
      ['rules-only', 1],
    ]);
    await holder.reload();
    expect(holder.status()).toMatchObject({ mode: 'model' });
    expect(holder.status().scoreError).toBeUndefined();
    await expect(score()).rejects.toThrow('boom');
    fault.throwing = null;
    await expect(score()).resolves.toHaveLength(1);
    expect(changes.map((c) => c.mode)).toEqual(['model', 'rules-only', 'model', 'rules-only', 'model']);
    await holder.close();
  });

  it('probes a failing model itself, so a process without scoring traffic sees it recover', async () => {
    const fault: ScorerFault = { throwing: 'boom' };
    const changes: ModelStatus[] = [];
    const holder = new ModelHolder('m', faultyLoader(fault), silent, undefined, (s) => changes.push(s), 20);
    await holder.reload();
    await expect(holder.use((s) => s.score(new Float32Array(FEATURE_NEUTRAL), 1))).rejects.toThrow('boom');
    expect(holder.status().mode).toBe('rules-only');
    // probes keep failing while the fault lasts: still rules-only, more failures counted
    await eventually(
      async () => holder.status().scoreError?.failures ?? 0,
      (n) => n >= 3,
      'the probe to score again',
    );
    expect(holder.status().mode).toBe('rules-only');
    fault.throwing = null;
    // no call from here: the probe alone brings the model back
    await eventually(
      async () => holder.status().mode,
      (m) => m === 'model',
      'the probe to clear the failure',
    );
    expect(holder.status().scoreError).toBeUndefined();
    expect(changes.map((c) => c.mode)).toEqual(['model', 'rules-only', 'model']);
    await holder.close();
  });

  it('a small batch scored in-process does not end a failure of the path large batches take', async () => {
    // large batches (>= 100 rows here) go to a pool that is down; small ones score in-process
    const down = { pool: true };
    const holder = new ModelHolder(
      'm',
      async (dir) => {
        const base: PdScorer = await testModelLoader(dir);
        return {
          ...base,
          score: async (m, rows) => {
            if (down.pool && rows >= 100) throw new Error('no score worker is running');
            return base.score(m, rows);
          },
          probe: async () => {
            if (down.pool) throw new Error('no score worker is running');
          },
        };
      },
      silent,
    );
    await holder.reload();
    const score = (rows: number) =>
      holder.use((s) => s.score(new Float32Array(rows * FEATURE_NEUTRAL.length), rows));
    await expect(score(200)).rejects.toThrow('no score worker');
    expect(holder.status().mode).toBe('rules-only');
    // the small call succeeds and starts a probe, which fails: still rules-only, one more failure
    await expect(score(1)).resolves.toHaveLength(1);
    await eventually(
      async () => holder.status().scoreError?.failures ?? 0,
      (n) => n >= 2,
      'the probe after the small success',
    );
    expect(holder.status().mode).toBe('rules-only');
    down.pool = false;
    await expect(score(1)).resolves.toHaveLength(1);
    await eventually(
      async () => holder.status().mode,
      (m) => m === 'model',
      'the probe to end the failure',
    );
    await holder.close();
  });

  it('shows the switch in preempt_model_info', async () => {
    const fault: ScorerFault = { throwing: 'boom' };
    const metrics = createMetrics();
    const holder = modelHolderFor(configFor({}), silent, metrics, faultyLoader(fault));
    await holder.reload();
    const info = async () =>
      (await metrics.registry.metrics()).split('\n').filter((l) => l.startsWith('preempt_model_info'));
    expect(await info()).toEqual(['preempt_model_info{version="test@1",backend="cpu",mode="model"} 1']);
    await expect(holder.use((s) => s.score(new Float32Array(FEATURE_NEUTRAL), 1))).rejects.toThrow('boom');
    expect(await info()).toEqual(['preempt_model_info{version="test@1",backend="cpu",mode="rules-only"} 1']);
    fault.throwing = null;
    // a success after the failure starts a probe of the model; its success ends the failure
    await holder.use((s) => s.score(new Float32Array(FEATURE_NEUTRAL), 1));
    await eventually(info, (l) => l[0]?.includes('mode="model"') === true, 'the probe to end the failure');
    expect(await info()).toEqual(['preempt_model_info{version="test@1",backend="cpu",mode="model"} 1']);
    await holder.close();
  });

  it('ignores a failure of a model already replaced by a reload', async () => {
    let fail: (e: Error) => void = () => {};
    let n = 0;
    const holder = new ModelHolder(
      'm',
      async (dir) => {
        const base: PdScorer = await testModelLoader(dir);
        const first = ++n === 1;
        return {
          ...base,
          score: (m, rows) =>
            first
              ? new Promise<Float32Array>((_, reject) => {
                  fail = reject;
                })
              : base.score(m, rows),
        };
      },
      silent,
    );
    await holder.reload();
    const old = holder.use((s) => s.score(new Float32Array(FEATURE_NEUTRAL), 1));
    await holder.reload();
    fail(new Error('the old pool was closed'));
    await expect(old).rejects.toThrow('the old pool was closed');
    expect(holder.status()).toMatchObject({ mode: 'model' });
    expect(holder.status().scoreError).toBeUndefined();
    await holder.close();
  });
});
