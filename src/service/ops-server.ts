/**
 * The operational endpoints of a worker process (`PREEMPT_METRICS_PORT`): /metrics (its own registry:
 * evaluation lag, decisions, job durations), /healthz, and /readyz (Redis reachable and every held
 * evaluator loop turning).
 */
import { serve } from '@hono/node-server';
import { Hono } from 'hono';
import type { Redis } from 'ioredis';
import type { EvaluatorSupervisor } from './evaluator/supervisor.js';
import type { ServiceMetrics } from './metrics.js';

/** ms: an evaluator loop that has not turned for this long is stuck (it blocks at most ~1 s per read) */
export const LOOP_STALE_MS = 30_000;

export interface OpsServer {
  port: number;
  close(): Promise<void>;
}

export async function serveOps(
  port: number,
  host: string,
  metrics: ServiceMetrics,
  redis: Redis,
  supervisor: EvaluatorSupervisor,
): Promise<OpsServer> {
  const app = new Hono();
  app.get('/healthz', (c) => c.json({ status: 'ok' }));
  app.get('/readyz', async (c) => {
    const redisOk = await redis.ping().then(
      (r) => r === 'PONG',
      () => false,
    );
    const evaluator = supervisor.healthy(LOOP_STALE_MS);
    const ready = redisOk && evaluator;
    return c.json(
      { ready, redis: redisOk, evaluator: { healthy: evaluator, shards: supervisor.status() } },
      ready ? 200 : 503,
    );
  });
  app.get('/metrics', async (c) =>
    c.body(await metrics.registry.metrics(), 200, { 'Content-Type': metrics.registry.contentType }),
  );
  const server = serve({ fetch: app.fetch, port, hostname: host });
  const bound = await new Promise<number>((resolve, reject) => {
    server.once('error', reject);
    server.once('listening', () => {
      const a = server.address();
      resolve(typeof a === 'object' && a ? a.port : port);
    });
  });
  return { port: bound, close: () => new Promise<void>((r) => server.close(() => r())) };
}
