/**
 * The HTTP application: middleware (request id, access log, latency metric, body limit, shutdown gate),
 * the declared routes, the operational endpoints and the one error handler. Built from its
 * dependencies so tests drive it with `app.request()` and no port.
 */
import { Hono } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { requestId } from 'hono/request-id';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { actionsRoute } from './api/actions.js';
import type { AppEnv } from './api/env.js';
import { eventsRoute } from './api/events.js';
import { modelRoutes } from './api/model.js';
import { buildOpenApi, docsPage } from './api/openapi.js';
import { queuesRoute } from './api/queues.js';
import { riskRoutes } from './api/risk.js';
import type { AnyRoute } from './api/route.js';
import { defineRoute } from './api/route.js';
import { HealthSchema, ReadySchema } from './api/schemas.js';
import { type HistoryFeaturizer, scoreRoute } from './api/score.js';
import type { KeyStore } from './auth/keys.js';
import type { AuthDeps } from './auth/middleware.js';
import { RateLimiter } from './auth/rate-limit.js';
import type { ServiceConfig } from './config.js';
import { errorResponse, makeOnError, ServiceError } from './errors.js';
import { featurizeHistory } from './evaluator/featurize.js';
import type { ServiceMetrics } from './metrics.js';
import type { ModelHolder } from './model/holder.js';
import type { ActionProducer } from './queue/producer.js';
import { AuditLog } from './state/audit.js';
import { shardBacklogs } from './state/event-log.js';
import { keyspace } from './state/keys.js';
import { RiskStore } from './state/risk-store.js';

export const SERVICE_VERSION = '0.1.0';

export interface AppDeps {
  config: ServiceConfig;
  redis: Redis;
  keys: KeyStore;
  model: ModelHolder;
  metrics: ServiceMetrics;
  log: Logger;
  featurize?: HistoryFeaturizer;
  /** the execution queues, for `/v1/queues` and the queue-depth metric */
  queues?: ActionProducer;
  /** more readiness conditions (e.g. the in-process evaluator's health) */
  readiness?: () => { ok: boolean; detail: Record<string, unknown> };
  /** mount extra (admin) routes, e.g. the queue dashboard */
  extend?: (app: Hono<AppEnv>, auth: AuthDeps) => void;
}

export interface ServiceApp {
  app: Hono<AppEnv>;
  routes: readonly AnyRoute[];
  openapi: Record<string, unknown>;
  /** stop accepting requests (503) before draining on shutdown */
  beginShutdown(): void;
}

export function createApp(deps: AppDeps): ServiceApp {
  const { config, redis, log, metrics, model } = deps;
  const keys = keyspace(config.PREEMPT_PREFIX);
  const store = new RiskStore(redis, keys, config.PREEMPT_SHARDS, config.PREEMPT_AT_RISK_MIN_PD);
  const audit = new AuditLog(redis, keys);
  const limiter =
    config.PREEMPT_RATE_LIMIT > 0
      ? new RateLimiter(redis, keys, config.PREEMPT_RATE_LIMIT, config.PREEMPT_RATE_WINDOW_MS)
      : undefined;
  const auth = { keys: deps.keys, limiter };
  let shuttingDown = false;

  const app = new Hono<AppEnv>();
  app.use(requestId());
  app.use(async (c, next) => {
    const started = performance.now();
    if (shuttingDown) {
      c.header('Connection', 'close');
      return errorResponse(
        c,
        new ServiceError('SHUTTING_DOWN', 'the service is shutting down; retry on another instance'),
      );
    }
    await next();
    const seconds = (performance.now() - started) / 1000;
    const route = c.req.routePath || 'unmatched';
    metrics.httpDuration.observe({ method: c.req.method, route, status: String(c.res.status) }, seconds);
    log.info(
      {
        requestId: c.get('requestId'),
        method: c.req.method,
        path: c.req.path,
        status: c.res.status,
        ms: Math.round(seconds * 1e4) / 10,
        keyId: c.get('principal')?.keyId,
      },
      'request',
    );
  });
  app.use(
    bodyLimit({
      maxSize: config.PREEMPT_BODY_LIMIT_BYTES,
      onError: (c) =>
        errorResponse(
          c,
          new ServiceError(
            'PAYLOAD_TOO_LARGE',
            `request body exceeds ${config.PREEMPT_BODY_LIMIT_BYTES} bytes`,
          ),
        ),
    }),
  );

  const ops: AnyRoute[] = [
    defineRoute(
      {
        method: 'get',
        path: '/healthz',
        tag: 'operations',
        summary: 'Liveness',
        scope: null,
        responses: { 200: { description: 'alive', schema: HealthSchema } },
      },
      (c) => c.json({ status: 'ok' as const }),
    ),
    defineRoute(
      {
        method: 'get',
        path: '/readyz',
        tag: 'operations',
        summary: 'Readiness: Redis reachable and the model loaded (or rules-only by configuration)',
        scope: null,
        responses: {
          200: { description: 'ready', schema: ReadySchema },
          503: { description: 'not ready', schema: ReadySchema },
        },
      },
      async (c) => {
        const redisOk = await redis.ping().then(
          (r) => r === 'PONG',
          () => false,
        );
        const status = model.status();
        const modelOk = status.mode === 'model' || !config.PREEMPT_USE_MODEL;
        const extra = deps.readiness?.();
        const ready = redisOk && modelOk && !shuttingDown && (extra?.ok ?? true);
        const detail = { ...(status.error ? { modelError: status.error } : {}), ...(extra?.detail ?? {}) };
        const body = {
          ready,
          redis: redisOk,
          model: status.mode,
          ...(Object.keys(detail).length > 0 ? { detail } : {}),
        };
        return c.json(body, ready ? 200 : 503);
      },
    ),
    defineRoute(
      {
        method: 'get',
        path: '/metrics',
        tag: 'operations',
        summary: 'Prometheus metrics',
        scope: null,
        responses: { 200: { description: 'text exposition format', contentType: 'text/plain' } },
      },
      async (c) => {
        const backlogs = await shardBacklogs(redis, keys).catch(() => new Map<number, number>());
        for (const [shard, lag] of backlogs) metrics.evalBacklog.set({ shard: String(shard) }, lag);
        if (deps.queues) {
          const depths = await deps.queues.depths().catch(() => undefined);
          for (const [queue, counts] of Object.entries(depths ?? {}))
            for (const [state, n] of Object.entries(counts)) metrics.queueDepth.set({ queue, state }, n);
        }
        return c.body(await metrics.registry.metrics(), 200, {
          'Content-Type': metrics.registry.contentType,
        });
      },
    ),
  ];
  const api: AnyRoute[] = [
    eventsRoute({
      redis,
      keys,
      dedupTtlMs: config.PREEMPT_DEDUP_TTL_MS,
      maxFutureMs: config.PREEMPT_MAX_FUTURE_MS,
      metrics,
    }),
    ...riskRoutes(store, config.PREEMPT_AT_RISK_MIN_PD),
    scoreRoute(model, metrics, deps.featurize ?? featurizeHistory),
    ...modelRoutes(model, redis, keys),
    actionsRoute(audit),
    ...(deps.queues ? [queuesRoute(deps.queues)] : []),
  ];
  const docs: AnyRoute[] = [
    defineRoute(
      {
        method: 'get',
        path: '/openapi.json',
        tag: 'operations',
        summary: 'This OpenAPI document',
        scope: null,
        responses: { 200: { description: 'OpenAPI 3.1' } },
      },
      (c) => c.json(openapi),
    ),
    defineRoute(
      {
        method: 'get',
        path: '/docs',
        tag: 'operations',
        summary: 'API reference page',
        scope: null,
        responses: { 200: { description: 'HTML', contentType: 'text/html' } },
      },
      (c) => c.html(docsPage(openapi)),
    ),
  ];
  const routes = [...api, ...ops, ...docs];
  const openapi = buildOpenApi(routes, SERVICE_VERSION);
  for (const r of routes) r.mount(app, auth);
  deps.extend?.(app, auth);

  app.notFound((c) =>
    errorResponse(c, new ServiceError('NOT_FOUND', `no route ${c.req.method} ${c.req.path}`)),
  );
  app.onError(makeOnError(log));

  return {
    app,
    routes,
    openapi,
    beginShutdown: () => {
      shuttingDown = true;
    },
  };
}
