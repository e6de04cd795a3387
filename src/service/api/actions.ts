/**
 * `GET /v1/actions`: the audit trail (decisions, executions, failures, settlements), newest first.
 */
import type { AuditLog } from '../state/audit.js';
import { defineRoute } from './route.js';
import { ActionsQuerySchema, ActionsResponseSchema } from './schemas.js';

export function actionsRoute(audit: AuditLog) {
  return defineRoute(
    {
      method: 'get',
      path: '/v1/actions',
      tag: 'actions',
      summary: 'The audit trail of decisions and executed reductions, newest first',
      scope: 'admin',
      query: ActionsQuerySchema,
      responses: {
        200: {
          description: 'a page of audit entries; pass `next` as `before` for the next page',
          schema: ActionsResponseSchema,
        },
      },
    },
    async (c, { query }) => {
      const opts: { limit: number; before?: string; account?: string } = { limit: query.limit };
      if (query.before) opts.before = query.before;
      if (query.account) opts.account = query.account;
      return c.json(await audit.list(opts));
    },
  );
}
