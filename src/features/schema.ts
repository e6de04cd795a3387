/**
 * The feature schema: the ordered list of features (name, unit, meaning, neutral value) that every training
 * row and every live vector is laid out by, the parameters that fix their meaning, and the schema hash a
 * model records at training time and checks at load (`assertSchemaHash`). Change a name, a unit, a neutral
 * value, a parameter or the order and the hash changes: bump `FEATURE_SCHEMA_VERSION` with it.
 *
 * Conventions: every value is finite. A missing input yields the feature's `neutral` value and sets the
 * matching `*_missing` flag feature to 1. "Signed" market features are multiplied by the sign of the
 * account's position (long +1, short -1), so positive always means "in the position's favour" (except
 * `funding_pay`, positive = the account pays). Rates are per hour (`/h`) or per day (`/d`) over
 * exponentially decayed windows (see `FEATURE_PARAMS`), never all-time counts, so they transfer across
 * histories of different lengths.
 */
import { createHash } from 'node:crypto';
import { FEATURE_PARAMS, FEATURE_SCHEMA_VERSION, FEATURES } from './feature-defs.js';

export {
  FEATURE_PARAMS,
  FEATURE_SCHEMA_VERSION,
  FEATURES,
  type FeatureDef,
  type FeatureGroup,
} from './feature-defs.js';

export type FeatureName = (typeof FEATURES)[number]['name'];

export const FEATURE_COUNT: number = FEATURES.length;
export const FEATURE_NAMES: readonly FeatureName[] = FEATURES.map((f) => f.name);
export const FEATURE_UNITS: readonly string[] = FEATURES.map((f) => f.unit);
/** Neutral value of each feature, in row order. */
export const FEATURE_NEUTRAL: Float32Array = Float32Array.from(FEATURES.map((f) => f.neutral));

/** Column index of each feature by name: `F.leverage`. */
export const F = Object.fromEntries(FEATURES.map((f, i) => [f.name, i])) as Record<FeatureName, number>;

/** The canonical JSON the hash is taken over (version, params, then name/unit/neutral in order). */
export function schemaCanonicalJson(): string {
  return JSON.stringify({
    version: FEATURE_SCHEMA_VERSION,
    params: FEATURE_PARAMS,
    features: FEATURES.map((f) => [f.name, f.unit, f.neutral]),
  });
}

/** sha256 (hex) of `schemaCanonicalJson()`. */
export const FEATURE_SCHEMA_HASH: string = createHash('sha256').update(schemaCanonicalJson()).digest('hex');

export interface FeatureSchemaInfo {
  version: number;
  hash: string;
  names: readonly string[];
  units: readonly string[];
  neutral: readonly number[];
}

/** What a model stores in its metadata. */
export function featureSchemaInfo(): FeatureSchemaInfo {
  return {
    version: FEATURE_SCHEMA_VERSION,
    hash: FEATURE_SCHEMA_HASH,
    names: FEATURE_NAMES,
    units: FEATURE_UNITS,
    neutral: Array.from(FEATURE_NEUTRAL),
  };
}

export class FeatureSchemaMismatchError extends Error {
  readonly code = 'FEATURE_SCHEMA_MISMATCH';
  constructor(
    readonly expected: string,
    readonly actual: string,
  ) {
    super(
      `feature schema mismatch: the model was trained on schema ${expected.slice(0, 12)}…, this build computes ` +
        `schema ${actual.slice(0, 12)}… (v${FEATURE_SCHEMA_VERSION}); retrain the model on this build's features ` +
        'or run the build it was trained with',
    );
    this.name = 'FeatureSchemaMismatchError';
  }
}

/** Throws `FeatureSchemaMismatchError` unless `expected` is this build's schema hash. */
export function assertSchemaHash(expected: string): void {
  if (expected !== FEATURE_SCHEMA_HASH) throw new FeatureSchemaMismatchError(expected, FEATURE_SCHEMA_HASH);
}
