/**
 * Process wiring: an API process (HTTP server over the app), a worker process (evaluator shards and
 * execution workers), or both in one (`preempt start`). Each handle's `close()` is the graceful shutdown:
 * stop accepting, finish in-flight work, close workers, flush, disconnect.
 */

import { serve } from '@hono/node-server';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { pino } from 'pino';
import { FEATURE_SCHEMA_HASH } from '../features/schema.js';
import { resolvePolicyConfig } from '../margin/index.js';
import { mountQueueDashboard } from './api/admin-queues.js';
import { createApp, type ServiceApp } from './app.js';
import { KeyStore } from './auth/keys.js';
import type { ServiceConfig } from './config.js';
import { EvaluatorSupervisor } from './evaluator/supervisor.js';
import { createMetrics, type ServiceMetrics } from './metrics.js';
import { defaultLoader, ModelHolder, type ModelStatus, type ScorerLoader } from './model/holder.js';
import { type OpsServer, serveOps } from './ops-server.js';
import { ActionProducer } from './queue/producer.js';
import { type ExecutionWorkers, startExecutionWorkers } from './queue/worker.js';
import { AuditLog } from './state/audit.js';
import { keyspace } from './state/keys.js';
import { connectRedis, createRedis } from './state/redis.js';
import { RestrictionStore } from './state/restrictions.js';
import { RiskStore } from './state/risk-store.js';
import { SimulatedVenue } from './venue/simulated.js';
import type { ExecutionVenue } from './venue/types.js';
import { WebhookVenue } from './venue/webhook.js';

export class MissingKeysError extends Error {
  readonly code = 'NO_KEYS_FILE';
}

export interface RuntimeOptions {
  log?: Logger;
  metrics?: ServiceMetrics;
  /** default: the lead's loadScorer over PREEMPT_MODEL_DIR */
  loader?: ScorerLoader;
  /** share one model between the API and the worker of one process */
  model?: ModelHolder;
  /** default: PREEMPT_KEYS_FILE */
  keys?: KeyStore;
  /** default: from PREEMPT_VENUE */
  venue?: ExecutionVenue;
  /** extra readiness for the API (`preempt start` adds the in-process evaluator's health) */
  readiness?: () => { ok: boolean; detail: Record<string, unknown> };
  /** test tuning: BullMQ lock/stall periods and the evaluator's read block, ms */
  tuning?: { lockDurationMs?: number; stalledIntervalMs?: number; blockMs?: number };
}

export function makeLogger(config: ServiceConfig): Logger {
  return pino(
    {
      level: config.PREEMPT_LOG_LEVEL,
      base: { service: 'preempt', pid: process.pid },
      redact: {
        paths: [
          'authorization',
          '*.authorization',
          'headers.authorization',
          '*.apiKey',
          '*.key',
          '*.secret',
          '*.password',
        ],
        censor: '[redacted]',
      },
    },
    pino.destination(2),
  );
}

function requireUrl(config: ServiceConfig): string {
  return config.REDIS_URL ?? 'redis://127.0.0.1:6379';
}

export function modelHolderFor(
  config: ServiceConfig,
  log: Logger,
  metrics: ServiceMetrics,
  loader?: ScorerLoader,
): ModelHolder {
  const onChange = (s: ModelStatus) => {
    metrics.modelInfo.reset();
    metrics.modelInfo.set(
      { version: s.info?.version ?? 'none', backend: s.info?.backend ?? 'none', mode: s.mode },
      1,
    );
  };
  const disabled: ScorerLoader = async () => {
    throw new Error('PREEMPT_USE_MODEL=false: rules only');
  };
  const base = loader ?? defaultLoader;
  const verifiedOnly: ScorerLoader = async (dir) => {
    const scorer = await base(dir);
    if (scorer.info.filesVerified) return scorer;
    await scorer.close();
    throw new Error(
      `model in ${dir} records no sha256 digests of its files (metadata.json "digests"), so they cannot be checked; ` +
        'PREEMPT_REQUIRE_MODEL_DIGESTS refuses it (retrain it, or unset that setting to load it unverified)',
    );
  };
  return new ModelHolder(
    config.PREEMPT_MODEL_DIR,
    config.PREEMPT_USE_MODEL ? (config.PREEMPT_REQUIRE_MODEL_DIGESTS ? verifiedOnly : base) : disabled,
    log,
    FEATURE_SCHEMA_HASH,
    onChange,
  );
}

/** Follow `POST /v1/model/reload` from any process. */
async function subscribeReloads(url: string, channel: string, model: ModelHolder): Promise<Redis> {
  const sub = createRedis(url, 'wait', 'preempt-model-sub');
  await sub.connect().catch(() => {});
  await sub.subscribe(channel).catch(() => {});
  sub.on('message', () => {
    void model.reload();
  });
  return sub;
}

export interface ApiHandle {
  service: ServiceApp;
  port: number;
  close(): Promise<void>;
}

export async function startApi(config: ServiceConfig, opts: RuntimeOptions = {}): Promise<ApiHandle> {
  const log = opts.log ?? makeLogger(config);
  const metrics = opts.metrics ?? createMetrics({ defaults: true });
  let keys = opts.keys;
  if (!keys) {
    if (!config.PREEMPT_KEYS_FILE)
      throw new MissingKeysError(
        'set PREEMPT_KEYS_FILE to a keys file (create one with `preempt keys create --scopes admin --file F`)',
      );
    keys = KeyStore.fromFile(config.PREEMPT_KEYS_FILE);
  }
  const url = requireUrl(config);
  const redis = await connectRedis(url, 'fail-fast', 'preempt-api');
  const ownModel = !opts.model;
  const model = opts.model ?? modelHolderFor(config, log, metrics, opts.loader);
  if (ownModel) await model.reload();
  const sub = await subscribeReloads(url, keyspace(config.PREEMPT_PREFIX).modelReload, model);
  const producer = new ActionProducer(redis, keyspace(config.PREEMPT_PREFIX), {
    attempts: config.PREEMPT_JOB_ATTEMPTS,
    backoffMs: config.PREEMPT_JOB_BACKOFF_MS,
  });
  const service = createApp({
    config,
    redis,
    keys,
    model,
    metrics,
    log,
    queues: producer,
    ...(opts.readiness ? { readiness: opts.readiness } : {}),
    extend: (app, auth) => mountQueueDashboard(app, auth, Object.values(producer.queues)),
  });
  const server = serve({ fetch: service.app.fetch, port: config.PORT, hostname: config.HOST });
  const port = await new Promise<number>((resolve, reject) => {
    server.once('error', reject);
    server.once('listening', () => {
      const a = server.address();
      resolve(typeof a === 'object' && a ? a.port : config.PORT);
    });
  });
  log.info({ port, host: config.HOST, keys: keys.size, model: model.status().mode }, 'API listening');
  return {
    service,
    port,
    async close() {
      service.beginShutdown();
      await new Promise<void>((r) => server.close(() => r()));
      await producer.close().catch(() => {});
      sub.disconnect();
      if (ownModel) await model.close();
      await redis.quit().catch(() => {});
    },
  };
}

export interface WorkerHandle {
  supervisor: EvaluatorSupervisor;
  /** the ops endpoints, when PREEMPT_METRICS_PORT is set */
  ops: OpsServer | undefined;
  workers: ExecutionWorkers;
  model: ModelHolder;
  close(): Promise<void>;
}

export function venueFor(config: ServiceConfig): ExecutionVenue {
  if (config.PREEMPT_VENUE === 'webhook')
    return new WebhookVenue({
      url: config.PREEMPT_WEBHOOK_URL as string,
      secret: config.PREEMPT_WEBHOOK_SECRET as string,
      timeoutMs: config.PREEMPT_WEBHOOK_TIMEOUT_MS,
    });
  return new SimulatedVenue();
}

export async function startWorker(config: ServiceConfig, opts: RuntimeOptions = {}): Promise<WorkerHandle> {
  const log = opts.log ?? makeLogger(config);
  const metrics = opts.metrics ?? createMetrics({ defaults: true });
  const url = requireUrl(config);
  const keys = keyspace(config.PREEMPT_PREFIX);
  const writes = await connectRedis(url, 'fail-fast', 'preempt-evaluator');
  const ownModel = !opts.model;
  const model = opts.model ?? modelHolderFor(config, log, metrics, opts.loader);
  if (ownModel) await model.reload();
  const sub = ownModel ? await subscribeReloads(url, keys.modelReload, model) : undefined;
  const producer = new ActionProducer(writes, keys, {
    attempts: config.PREEMPT_JOB_ATTEMPTS,
    backoffMs: config.PREEMPT_JOB_BACKOFF_MS,
  });
  const audit = new AuditLog(writes, keys);
  const supervisor = new EvaluatorSupervisor({
    redis: writes,
    newReader: () => {
      const r = createRedis(url, 'wait', 'preempt-evaluator-read');
      void r.connect().catch(() => {});
      return r;
    },
    keys,
    shards: config.PREEMPT_SHARDS,
    batch: config.PREEMPT_EVAL_BATCH,
    policy: resolvePolicyConfig(config.PREEMPT_POLICY),
    model,
    producer,
    store: new RiskStore(writes, keys, config.PREEMPT_SHARDS, config.PREEMPT_AT_RISK_MIN_PD),
    restrictions: new RestrictionStore(writes, keys, config.PREEMPT_SHARDS),
    audit,
    metrics,
    log,
    leaseMs: config.PREEMPT_SHARD_LEASE_MS,
    maxShards: config.PREEMPT_WORKER_MAX_SHARDS,
    snapshotEveryEntries: config.PREEMPT_SNAPSHOT_EVERY_ENTRIES,
    // ingest de-duplicates for PREEMPT_DEDUP_TTL_MS; a shard's own memory only needs to cover late events
    idWindowMs: config.PREEMPT_SHARD_ID_WINDOW_MS,
    snapshotMaxBytes: config.PREEMPT_SNAPSHOT_MAX_BYTES,
    logRetentionMs: config.PREEMPT_LOG_RETENTION_MS,
    trimIntervalMs: config.PREEMPT_SNAPSHOT_EVERY_ENTRIES > 0 ? config.PREEMPT_LOG_TRIM_INTERVAL_MS : 0,
    ...(opts.tuning?.blockMs ? { blockMs: opts.tuning.blockMs } : {}),
  });
  await supervisor.start();
  // never connected: the workers open their own clients from its options (`workerConnectionOptions`)
  const jobConn = createRedis(url, 'wait', 'preempt-worker');
  const recConn = createRedis(url, 'wait', 'preempt-worker-rec');
  await recConn.connect();
  const venue = opts.venue ?? venueFor(config);
  const workers = startExecutionWorkers({
    connection: jobConn,
    redis: recConn,
    keys,
    store: new RiskStore(recConn, keys, config.PREEMPT_SHARDS, config.PREEMPT_AT_RISK_MIN_PD),
    restrictions: new RestrictionStore(recConn, keys, config.PREEMPT_SHARDS),
    venue,
    audit: new AuditLog(recConn, keys),
    metrics,
    log,
    concurrency: config.PREEMPT_WORKER_CONCURRENCY,
    dedupTtlMs: config.PREEMPT_DEDUP_TTL_MS,
    ...(opts.tuning?.lockDurationMs ? { lockDurationMs: opts.tuning.lockDurationMs } : {}),
    ...(opts.tuning?.stalledIntervalMs ? { stalledIntervalMs: opts.tuning.stalledIntervalMs } : {}),
  });
  const ops =
    config.PREEMPT_METRICS_PORT !== undefined
      ? await serveOps(config.PREEMPT_METRICS_PORT, config.HOST, metrics, writes, supervisor)
      : undefined;
  log.info(
    {
      opsPort: ops?.port,
      shards: supervisor.shards(),
      of: config.PREEMPT_SHARDS,
      venue: venue.name,
      model: model.status().mode,
    },
    'worker started',
  );
  return {
    supervisor,
    ops,
    workers,
    model,
    async close() {
      await ops?.close();
      await supervisor.close();
      await workers.close();
      await venue.close?.();
      await producer.close().catch(() => {});
      sub?.disconnect();
      if (ownModel) await model.close();
      await Promise.all([writes.quit(), recConn.quit()].map((p) => p.catch(() => {})));
    },
  };
}
