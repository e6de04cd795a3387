/**
 * The BullMQ dashboard (bull-board) under /admin/queues, for `admin` keys only. A browser cannot add a
 * Bearer header to the dashboard's own requests, so besides `Authorization: Bearer KEY` it accepts HTTP Basic
 * with the key as the password (any user name): the browser asks once and resends it for the page's calls.
 */
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { HonoAdapter } from '@bull-board/hono';
import { serveStatic } from '@hono/node-server/serve-static';
import type { Queue } from 'bullmq';
import type { Hono, MiddlewareHandler } from 'hono';
import type { AuthDeps } from '../auth/middleware.js';
import { authenticate, hasScope } from '../auth/middleware.js';
import type { AppEnv } from './env.js';

export const ADMIN_QUEUES_PATH = '/admin/queues';

/** Bearer KEY, or Basic with KEY as the password, rewritten to the Bearer form `authenticate` checks. */
function bearerOrBasic(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const basic = /^Basic\s+(\S+)\s*$/i.exec(header);
  if (!basic?.[1]) return header;
  const decoded = Buffer.from(basic[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return `Bearer ${colon >= 0 ? decoded.slice(colon + 1) : decoded}`;
}

function adminOnly(auth: AuthDeps): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    let ok = false;
    try {
      ok = hasScope(authenticate(auth, bearerOrBasic(c.req.header('authorization'))), 'admin');
    } catch {
      ok = false;
    }
    if (!ok)
      return c.json(
        {
          code: 'UNAUTHORIZED',
          message: 'the queue dashboard needs an admin key (Bearer, or Basic with the key as password)',
          requestId: c.get('requestId') ?? null,
        },
        401,
        { 'WWW-Authenticate': 'Basic realm="preempt admin"' },
      );
    await next();
  };
}

export function mountQueueDashboard(app: Hono<AppEnv>, auth: AuthDeps, queues: readonly Queue[]): void {
  const adapter = new HonoAdapter(serveStatic);
  createBullBoard({
    queues: queues.map((q) => new BullMQAdapter(q, { readOnlyMode: false })),
    serverAdapter: adapter,
  });
  adapter.setBasePath(ADMIN_QUEUES_PATH);
  app.use(ADMIN_QUEUES_PATH, adminOnly(auth));
  app.use(`${ADMIN_QUEUES_PATH}/*`, adminOnly(auth));
  app.route(ADMIN_QUEUES_PATH, adapter.registerPlugin());
}
