/**
 * A model directory: `model.json` + `weights.bin` (TF.js layers model) and `metadata.json` (feature-schema
 * hash, normalisation, calibration, horizon, metrics, data fingerprint, seed, versions, and the sha256 digests
 * of the network's files). Loading refuses a model whose feature-schema hash differs from this build's, a
 * normalisation that does not fit the features (wrong length, non-finite, std <= 0), and the metadata of an
 * unfinished training run. A directory is read whole by `readModelFiles` (model-files.ts).
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { LayersModel } from '@tensorflow/tfjs';
import { z } from 'zod';
import { assertSchemaHash } from '../features/schema.js';
import { saveLayersModel } from '../tf/fs-io.js';
import { CalibrationSchema } from './calibration.js';
import { ArchitectureSchema } from './create-model.js';
import { DIGEST_PATTERN, networkDigests } from './digests.js';
import { ModelLoadError } from './errors.js';
import { NormalisationSchema } from './normalisation.js';
import { StackSchema } from './stack.js';

export const METADATA_JSON = 'metadata.json';

export { ModelLoadError };

const MetricsSchema = z.record(z.string(), z.number().nullable());

export const ModelMetadataSchema = z.object({
  name: z.string(),
  /** ISO time the model was trained; with the name, the model version */
  createdAt: z.string(),
  featureSchema: z.object({
    version: z.number(),
    hash: z.string(),
    names: z.array(z.string()),
    units: z.array(z.string()),
    neutral: z.array(z.number()),
  }),
  normalisation: NormalisationSchema,
  /** second stage (network logit + margin-rule distance), applied before `calibration`; absent in older models */
  stack: StackSchema.optional(),
  calibration: CalibrationSchema,
  architecture: ArchitectureSchema,
  /** label horizon and snapshot step, ms */
  horizonMs: z.number().positive(),
  everyMs: z.number().positive(),
  /** which snapshot rows it was trained, calibrated and tested on; absent: every row with a position */
  rows: z.object({ maxMarginRatio: z.number().gt(1) }).optional(),
  seed: z.number().int(),
  /** held-out metrics of the model and of the baselines beside it */
  metrics: z.object({
    model: MetricsSchema,
    baselines: z.record(z.string(), MetricsSchema),
    split: z.string(),
  }),
  /** baseline parameters, so that the baselines can be scored again */
  baselines: z.record(z.string(), z.unknown()).default({}),
  data: z.object({
    /** sha256 over the input files' names, sizes and contents */
    fingerprint: z.string(),
    files: z.array(z.string()),
    rows: z.record(z.string(), z.number()),
  }),
  training: z.record(z.string(), z.unknown()).default({}),
  versions: z.record(z.string(), z.string()),
  /**
   * `sha256:<hex>` of the exact bytes of `model.json` and of each weight file it names, by file name, recorded
   * by `writeMetadata`: a load checks that the network it read is the one this metadata was written for.
   * Absent in models written before 2026-12-06 and hand-built ones, which load unverified.
   */
  digests: z
    .record(z.string(), z.string().regex(DIGEST_PATTERN, 'expected sha256:<64 hex digits>'))
    .optional(),
});
export type ModelMetadata = z.infer<typeof ModelMetadataSchema>;

export async function readMetadata(dir: string): Promise<ModelMetadata> {
  const path = join(dir, METADATA_JSON);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new ModelLoadError(`no model at ${dir}: ${(e as Error).message}`, { cause: e });
  }
  return parseMetadata(path, text);
}

/** metadata.json's text (read from `path`) validated: its schema and a normalisation that fits the features. */
export function parseMetadata(path: string, text: string): ModelMetadata {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new ModelLoadError(`${path} is not valid JSON (${(e as Error).message})`);
  }
  const parsed = ModelMetadataSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ModelLoadError(`${path}: field ${issue?.path.join('.')}: ${issue?.message}`);
  }
  const meta = parsed.data;
  checkNormalisation(path, meta);
  return meta;
}

/** Normalisation values the scoring paths can use: one finite mean and one finite std > 0 per feature. */
function checkNormalisation(path: string, meta: ModelMetadata): void {
  const cols = meta.featureSchema.names.length;
  const { mean, std } = meta.normalisation;
  for (const [name, values] of [
    ['mean', mean],
    ['std', std],
  ] as const) {
    if (values.length !== cols)
      throw new ModelLoadError(
        `${path}: normalisation.${name} has ${values.length} values, the feature schema ${cols} features`,
      );
    const bad = values.findIndex((v) => !Number.isFinite(v) || (name === 'std' && v <= 0));
    if (bad >= 0)
      throw new ModelLoadError(
        `${path}: normalisation.${name}[${bad}] (${meta.featureSchema.names[bad]}) is ${values[bad]}: expected a finite number${name === 'std' ? ' above 0' : ''}`,
      );
  }
}

/**
 * The metadata of a training run that never finished: a run records its network and metadata before it
 * evaluates them, and the held-out metrics only once evaluated (a run interrupted in between, by an older
 * version that wrote into the model directory in place, left such a directory). Hand-built metadata
 * (no `training.epochsRun`) is not a training run's, and may go without metrics.
 */
export function isUnfinishedRun(meta: ModelMetadata): boolean {
  return meta.training.epochsRun !== undefined && Object.keys(meta.metrics.model).length === 0;
}

/**
 * Metadata plus the refusal of a model trained on other features and of an unfinished training run's
 * directory (`allowUnfinished`: only the training run itself, evaluating its own network before it has metrics).
 */
export async function readCompatibleMetadata(
  dir: string,
  opts: { allowUnfinished?: boolean } = {},
): Promise<ModelMetadata> {
  return assertCompatible(dir, await readMetadata(dir), opts);
}

/** `meta` (of the model in `dir`) unless it is for other features or from an unfinished run (see above). */
export function assertCompatible(
  dir: string,
  meta: ModelMetadata,
  opts: { allowUnfinished?: boolean } = {},
): ModelMetadata {
  assertSchemaHash(meta.featureSchema.hash);
  if (!opts.allowUnfinished && isUnfinishedRun(meta))
    throw new ModelLoadError(
      `${join(dir, METADATA_JSON)} is from a training run that did not finish (no held-out metrics): train the model again`,
    );
  return meta;
}

/**
 * Write `dir`'s metadata.json for the network already in `dir`, with the digests of that network's files as
 * they are now (any `digests` in `meta` is replaced): call it after the network is saved, also when only the
 * metadata changes. With `expectDigests` (the digests of the network the metadata's figures were computed on,
 * e.g. as `saveModelDir` recorded them before an evaluation), a network that is no longer that one is refused
 * with a `ModelLoadError` naming the files, and metadata.json is left as it was. Returns what was written.
 */
export async function writeMetadata(
  dir: string,
  meta: ModelMetadata,
  opts: { expectDigests?: Record<string, string> } = {},
): Promise<ModelMetadata> {
  const digests = await networkDigests(dir);
  const expected = opts.expectDigests;
  if (expected) {
    const names = [...new Set([...Object.keys(expected), ...Object.keys(digests)])].sort();
    const changed = names.filter((n) => expected[n] !== digests[n]);
    if (changed.length > 0)
      throw new ModelLoadError(
        `${dir}: ${changed.join(', ')} changed since the network was saved and evaluated; metadata.json not written`,
      );
  }
  const written = ModelMetadataSchema.parse({ ...meta, digests });
  await writeFile(join(dir, METADATA_JSON), `${JSON.stringify(written, null, 2)}\n`);
  return written;
}

export function modelVersion(meta: ModelMetadata): string {
  return `${meta.name}@${meta.createdAt}`;
}

/** Write a complete model directory: the network, then its metadata (with the network's digests). */
export async function saveModelDir(
  dir: string,
  model: LayersModel,
  meta: ModelMetadata,
): Promise<ModelMetadata> {
  await saveLayersModel(model, dir);
  return writeMetadata(dir, meta);
}
