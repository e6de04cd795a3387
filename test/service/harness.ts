/**
 * Test harness for the service: a real Redis under a fresh prefix, keys of each scope, a silent logger,
 * and a tiny deterministic PdScorer (a logistic function of one feature) standing in for the model.
 */
import { pino } from 'pino';
import { mountQueueDashboard } from '../../src/service/api/admin-queues.js';
import { createApp, type ServiceApp } from '../../src/service/app.js';
import { type KeyRecord, KeyStore, mintKey, type Scope } from '../../src/service/auth/keys.js';
import { configFor, type ServiceConfig } from '../../src/service/config.js';
import { createMetrics, type ServiceMetrics } from '../../src/service/metrics.js';
import { ModelHolder, type ScorerLoader } from '../../src/service/model/holder.js';
import { ActionProducer } from '../../src/service/queue/producer.js';
import { startWorker, type WorkerHandle } from '../../src/service/runtime.js';
import { keyspace } from '../../src/service/state/keys.js';
import { connectRedis } from '../../src/service/state/redis.js';
import { connect, deletePrefix, freshPrefix, redisUrl } from '../helpers/redis.js';
import { testModelLoader } from './test-model.js';

export { logisticScorer, testModelLoader } from './test-model.js';

export const silent = pino({ level: 'silent' });

export interface Harness {
  prefix: string;
  config: ServiceConfig;
  service: ServiceApp;
  metrics: ServiceMetrics;
  model: ModelHolder;
  keys: Record<Scope | 'all', string>;
  keyRecords: KeyRecord[];
  /** evaluator + execution workers, when asked for */
  worker: WorkerHandle | undefined;
  /** authorised JSON request through app.request() */
  call(
    method: string,
    path: string,
    opts?: { key?: string | null; body?: unknown; raw?: string | Uint8Array; contentType?: string },
  ): Promise<Response>;
  close(): Promise<void>;
}

export async function makeHarness(
  label: string,
  opts: { env?: Record<string, string | number>; loader?: ScorerLoader; worker?: boolean } = {},
): Promise<Harness> {
  const prefix = freshPrefix(label);
  const config = configFor({ PREEMPT_PREFIX: prefix, REDIS_URL: redisUrl(), ...(opts.env ?? {}) });
  const redis = await connectRedis(redisUrl(), 'fail-fast');
  const minted = {
    'score:read': mintKey(['score:read']),
    'events:write': mintKey(['events:write']),
    admin: mintKey(['admin']),
    all: mintKey(['score:read', 'events:write']),
  };
  const keyStore = KeyStore.fromRecords(Object.values(minted).map((m) => m.record));
  const metrics = createMetrics();
  const loader: ScorerLoader = opts.loader ?? testModelLoader;
  const model = new ModelHolder('models/test', loader, silent);
  await model.reload();
  const queues = new ActionProducer(redis, keyspace(prefix), { attempts: 3, backoffMs: 10 });
  const service = createApp({
    config,
    redis,
    keys: keyStore,
    model,
    metrics,
    log: silent,
    queues,
    extend: (app, auth) => mountQueueDashboard(app, auth, Object.values(queues.queues)),
  });
  const worker = opts.worker
    ? await startWorker(config, {
        log: silent,
        metrics,
        model,
        tuning: { blockMs: 100, lockDurationMs: 2000, stalledIntervalMs: 1000 },
      })
    : undefined;
  const keys = Object.fromEntries(Object.entries(minted).map(([k, v]) => [k, v.key])) as Harness['keys'];
  return {
    prefix,
    config,
    service,
    metrics,
    model,
    keys,
    keyRecords: Object.values(minted).map((m) => m.record),
    call(method, path, o = {}) {
      const headers: Record<string, string> = {};
      const key = o.key === undefined ? keys.admin : o.key;
      if (key !== null) headers.authorization = `Bearer ${key}`;
      let body: string | Uint8Array | undefined;
      if (o.raw !== undefined) body = o.raw;
      else if (o.body !== undefined) body = JSON.stringify(o.body);
      if (method === 'GET') body = undefined;
      if (body !== undefined) headers['content-type'] = o.contentType ?? 'application/json';
      return Promise.resolve(service.app.request(path, { method, headers, body }));
    },
    worker,
    async close() {
      await worker?.close();
      await queues.close();
      await model.close();
      const admin = connect();
      await deletePrefix(admin, prefix);
      admin.disconnect();
      redis.disconnect();
    },
  };
}
