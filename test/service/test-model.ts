/**
 * The model's test double: a deterministic PdScorer, a logistic function of one feature (no TF.js), so
 * service tests check the plumbing with known pds. Free of vitest imports: child processes use it too.
 */
import { FEATURE_NAMES, FEATURE_SCHEMA_HASH } from '../../src/features/schema.js';
import type { FeatureContribution, ModelInfo, PdScorer } from '../../src/model/types.js';
import type { ScorerLoader } from '../../src/service/model/holder.js';

/** pd = 1 / (1 + exp(k * (x[feature] - x0))): falls as the chosen feature (e.g. margin ratio) rises. */
export function logisticScorer(
  featureNames: readonly string[],
  feature: string,
  k = 4,
  x0 = 1.5,
  version = 'test@1',
  schemaHash = 'test-schema',
): PdScorer {
  const col = featureNames.indexOf(feature);
  if (col < 0) throw new Error(`no feature ${feature}`);
  const width = featureNames.length;
  const info: ModelInfo = {
    version,
    schemaHash,
    horizonMs: 3_600_000,
    backend: 'cpu',
    featureNames,
    filesVerified: false,
  };
  const pdOf = (x: number): number => 1 / (1 + Math.exp(k * (x - x0)));
  return {
    info,
    async score(matrix, rows) {
      const out = new Float32Array(rows);
      for (let i = 0; i < rows; i++) out[i] = pdOf(matrix[i * width + col] ?? 0);
      return out;
    },
    async explain(row, top = 3): Promise<FeatureContribution[]> {
      const base = pdOf(row[col] ?? 0);
      const neutral = pdOf(x0 * 2);
      return [{ feature, deltaPd: base - neutral }].slice(0, top);
    },
    async close() {},
  };
}

/** The test double of the model: pd from the margin-ratio feature of the real schema (pd 0.5 at ratio 3). */
export const testModelLoader: ScorerLoader = async () =>
  logisticScorer(FEATURE_NAMES, 'margin_ratio_log', 4, Math.log(3), 'test@1', FEATURE_SCHEMA_HASH);
