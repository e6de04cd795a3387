/**
 * The read side for risk engines: one account's risk, many at once, and the at-risk list. Everything is
 * read from the evaluators' results in Redis, so any API process answers the same.
 */
import { ServiceError } from '../errors.js';
import type { RiskStore } from '../state/risk-store.js';
import { defineRoute } from './route.js';
import {
  AccountParamsSchema,
  AtRiskQuerySchema,
  AtRiskResponseSchema,
  RiskQueryBodySchema,
  RiskQueryResponseSchema,
  RiskViewSchema,
} from './schemas.js';

export function riskRoutes(store: RiskStore, defaultMinPd: number) {
  return [
    defineRoute(
      {
        method: 'get',
        path: '/v1/accounts/at-risk',
        tag: 'risk',
        summary: 'Accounts whose pd is at least minPd, highest first',
        scope: 'score:read',
        query: AtRiskQuerySchema,
        responses: { 200: { description: 'the at-risk list', schema: AtRiskResponseSchema } },
      },
      async (c, { query }) => {
        const minPd = query.minPd ?? defaultMinPd;
        return c.json({ minPd, items: await store.atRisk(minPd, query.limit) });
      },
    ),
    defineRoute(
      {
        method: 'get',
        path: '/v1/accounts/:id/risk',
        tag: 'risk',
        summary: "An account's pd, margin state, decision and reasons",
        scope: 'score:read',
        params: AccountParamsSchema,
        responses: {
          200: { description: 'the latest evaluation', schema: RiskViewSchema },
          404: { description: 'account never evaluated' },
        },
      },
      async (c, { params }) => {
        const view = await store.get(params.id);
        if (!view) throw new ServiceError('NOT_FOUND', `account "${params.id}" has not been evaluated`);
        return c.json(view);
      },
    ),
    defineRoute(
      {
        method: 'post',
        path: '/v1/risk/query',
        tag: 'risk',
        summary: 'Risk of up to 10,000 accounts at once',
        scope: 'score:read',
        body: RiskQueryBodySchema,
        responses: {
          200: {
            description: 'views found, and the accounts never evaluated',
            schema: RiskQueryResponseSchema,
          },
        },
      },
      async (c, { body }) =>
        c.body(await store.getManyJson(body.accounts), 200, { 'content-type': 'application/json' }),
    ),
  ];
}
