/**
 * The feature pipeline's public API: the schema (names, units, neutral values, hash, mismatch refusal), the
 * pipeline (streaming `apply`, `snapshot` / `snapshotParallel` / `vector`), the snapshot worker pool and
 * the CSV writer.
 */
export { csvHeader, csvRows } from './csv.js';
export {
  type ApplyOutcome,
  FeaturePipeline,
  type FeaturePipelineOptions,
  type FeatureSnapshot,
  PipelineBusyError,
  type PipelineStats,
  type SnapshotOptions,
  SnapshotTimeError,
} from './pipeline.js';
export {
  assertSchemaHash,
  F,
  FEATURE_COUNT,
  FEATURE_NAMES,
  FEATURE_NEUTRAL,
  FEATURE_PARAMS,
  FEATURE_SCHEMA_HASH,
  FEATURE_SCHEMA_VERSION,
  FEATURE_UNITS,
  FEATURES,
  type FeatureDef,
  type FeatureName,
  type FeatureSchemaInfo,
  FeatureSchemaMismatchError,
  featureSchemaInfo,
} from './schema.js';
export { SnapshotPool, SnapshotWorkerError } from './snapshot-pool.js';
