/** Metadata for a test model directory: the current feature schema, the given stages, empty provenance. */
import { FEATURE_SCHEMA_HASH, featureSchemaInfo } from '../../src/features/schema.js';
import type { ModelMetadata } from '../../src/model/artifacts.js';
import type { Calibration } from '../../src/model/calibration.js';
import { type Architecture, DEFAULT_ARCHITECTURE } from '../../src/model/create-model.js';
import type { Normalisation } from '../../src/model/normalisation.js';

export function testModelMetadata(opts: {
  normalisation: Normalisation;
  calibration: Calibration;
  architecture?: Architecture;
  hash?: string;
  name?: string;
}): ModelMetadata {
  const info = featureSchemaInfo();
  return {
    name: opts.name ?? 'test',
    createdAt: '2026-11-24T00:00:00.000Z',
    featureSchema: {
      version: info.version,
      hash: opts.hash ?? FEATURE_SCHEMA_HASH,
      names: [...info.names],
      units: [...info.units],
      neutral: [...info.neutral],
    },
    normalisation: opts.normalisation,
    calibration: opts.calibration,
    architecture: opts.architecture ?? DEFAULT_ARCHITECTURE,
    horizonMs: 3_600_000,
    everyMs: 300_000,
    seed: 1,
    metrics: { model: {}, baselines: {}, split: 'test' },
    baselines: {},
    data: { fingerprint: 'x', files: [], rows: {} },
    training: {},
    versions: {},
  };
}
