/**
 * `POST /v1/score`: stateless scoring. Feature vectors (by position or by name), or a small history of
 * canonical events replayed through the same feature code the evaluators use, in; pd out. Nothing is
 * written.
 */
import { ServiceError } from '../errors.js';
import type { ServiceMetrics } from '../metrics.js';
import type { ModelHolder } from '../model/holder.js';
import { defineRoute } from './route.js';
import { ScoreBodySchema, ScoreResponseSchema } from './schemas.js';

/** Builds feature rows from a history (the evaluator's feature code); absent until the pipeline exists. */
export type HistoryFeaturizer = (
  events: unknown[],
  accounts: string[] | undefined,
  at: number | undefined,
) => Promise<{ accounts: string[]; matrix: Float32Array; width: number }>;

function toMatrix(rows: number[][], width: number, what: string): Float32Array {
  const m = new Float32Array(rows.length * width);
  rows.forEach((row, i) => {
    if (row.length !== width)
      throw new ServiceError('BAD_REQUEST', `${what}.${i}: expected ${width} features, got ${row.length}`, {
        field: `${what}.${i}`,
      });
    row.forEach((v, j) => {
      if (!Number.isFinite(v))
        throw new ServiceError('BAD_REQUEST', `${what}.${i}.${j}: must be finite`, {
          field: `${what}.${i}.${j}`,
        });
      m[i * width + j] = v;
    });
  });
  return m;
}

export function scoreRoute(
  model: ModelHolder,
  metrics: ServiceMetrics,
  featurize: HistoryFeaturizer | undefined,
) {
  return defineRoute(
    {
      method: 'post',
      path: '/v1/score',
      tag: 'score',
      summary: 'Score feature vectors or a history snapshot (stateless)',
      scope: 'score:read',
      body: ScoreBodySchema,
      responses: { 200: { description: 'pd per row', schema: ScoreResponseSchema } },
    },
    async (c, { body }) => {
      const result = await model.use(async (scorer) => {
        const names = scorer.info.featureNames;
        const width = names.length;
        let matrix: Float32Array;
        let rows: string[];
        if (body.vectors) {
          matrix = toMatrix(body.vectors, width, 'vectors');
          rows = body.vectors.map((_, i) => String(i));
        } else if (body.features) {
          const vectors = body.features.map((rec, i) =>
            names.map((n) => {
              const v = rec[n];
              if (v === undefined)
                throw new ServiceError('BAD_REQUEST', `features.${i}.${n}: required feature is missing`, {
                  field: `features.${i}.${n}`,
                });
              return v;
            }),
          );
          matrix = toMatrix(vectors, width, 'features');
          rows = vectors.map((_, i) => String(i));
        } else {
          if (!featurize)
            throw new ServiceError('BAD_REQUEST', 'history scoring is not available in this build', {
              field: 'history',
            });
          const h = body.history;
          if (!h) throw new ServiceError('BAD_REQUEST', 'give exactly one of vectors, features or history');
          const built = await featurize(h.events, h.accounts, h.at);
          if (built.width !== width)
            throw new ServiceError(
              'MODEL_UNAVAILABLE',
              `model expects ${width} features, the pipeline builds ${built.width}`,
            );
          matrix = built.matrix;
          rows = built.accounts;
        }
        const pd = rows.length > 0 ? Array.from(await scorer.score(matrix, rows.length)) : [];
        metrics.scoresComputed.inc({ source: 'api' }, rows.length);
        const out: {
          modelVersion: string;
          schemaHash: string;
          rows: string[];
          pd: number[];
          explanations?: unknown[];
        } = {
          modelVersion: scorer.info.version,
          schemaHash: scorer.info.schemaHash,
          rows,
          pd,
        };
        if (body.explain > 0)
          out.explanations = await Promise.all(
            rows.map((_, i) => scorer.explain(matrix.subarray(i * width, (i + 1) * width), body.explain)),
          );
        return out;
      });
      if (!result)
        throw new ServiceError(
          'MODEL_UNAVAILABLE',
          `no model is loaded (${model.status().error ?? 'rules-only mode'})`,
        );
      return c.json(result);
    },
  );
}
