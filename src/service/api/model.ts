/**
 * The model in use, and a reload that every process of the deployment follows (published on Redis).
 */
import type { Redis } from 'ioredis';
import type { ModelHolder, ModelStatus } from '../model/holder.js';
import type { Keyspace } from '../state/keys.js';
import { defineRoute } from './route.js';
import { ModelInfoSchema } from './schemas.js';

export function modelView(s: ModelStatus) {
  const view = {
    mode: s.mode,
    version: s.info?.version ?? null,
    schemaHash: s.info?.schemaHash ?? null,
    horizonMs: s.info?.horizonMs ?? null,
    backend: s.info?.backend ?? null,
    featureNames: [...(s.info?.featureNames ?? [])],
    filesVerified: s.info?.filesVerified ?? null,
    dir: s.dir,
  };
  return {
    ...view,
    ...(s.error ? { error: s.error } : {}),
    ...(s.scoreError ? { scoreError: { ...s.scoreError } } : {}),
  };
}

export function modelRoutes(model: ModelHolder, redis: Redis, keys: Keyspace) {
  return [
    defineRoute(
      {
        method: 'get',
        path: '/v1/model',
        tag: 'model',
        summary: 'The model in use (or rules-only, and why: no model loaded, or its scoring is failing)',
        scope: 'score:read',
        responses: { 200: { description: 'model status', schema: ModelInfoSchema } },
      },
      (c) => c.json(modelView(model.status())),
    ),
    defineRoute(
      {
        method: 'post',
        path: '/v1/model/reload',
        tag: 'model',
        summary: 'Reload the model from PREEMPT_MODEL_DIR in every process',
        description:
          'This process reloads before answering; evaluators and other API processes follow via Redis pub/sub.',
        scope: 'admin',
        responses: {
          200: {
            description: 'status after the reload (a failed reload keeps the previous model)',
            schema: ModelInfoSchema,
          },
        },
      },
      async (c) => {
        const status = await model.reload();
        await redis.publish(keys.modelReload, String(Date.now()));
        return c.json(modelView(status));
      },
    ),
  ];
}
