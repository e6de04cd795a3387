/**
 * Saving and loading TF.js layers models to a directory (`model.json` + `weights.bin`) with plain
 * node:fs, so that it works on every backend, without @tensorflow/tfjs-node's `file://` handler. A model
 * directory is loaded from its files read once into memory (`filesHandler`, fed by `readModelFiles` in
 * src/model/model-files.ts), so that the network is built from the very bytes whose digests were checked.
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { isAbsolute, join, normalize, sep } from 'node:path';
import type * as tfTypes from '@tensorflow/tfjs';
import { ModelLoadError } from '../model/errors.js';
import { initTf } from './runtime.js';

export const MODEL_JSON = 'model.json';
export const WEIGHTS_BIN = 'weights.bin';

type IOHandler = tfTypes.io.IOHandler;
type ModelArtifacts = tfTypes.io.ModelArtifacts;
type ModelJSON = tfTypes.io.ModelJSON;
type WeightsManifestEntry = tfTypes.io.WeightsManifestEntry;

/** bytes per stored value, by dtype (a quantised weight by its quantisation dtype) */
const DTYPE_BYTES: Record<string, number> = {
  float32: 4,
  int32: 4,
  bool: 1,
  complex64: 8,
  uint8: 1,
  uint16: 2,
  float16: 2,
};

/** The bytes a weight occupies in the weight files, as its manifest entry describes it. */
function weightBytes(spec: WeightsManifestEntry, manifestPath: string): number {
  const dtype = spec.quantization?.dtype ?? spec.dtype;
  const per = DTYPE_BYTES[dtype];
  const size = spec.shape.reduce((a, b) => a * b, 1);
  if (per === undefined || !Number.isSafeInteger(size) || size < 0)
    throw new ModelLoadError(
      `${manifestPath}: weight ${spec.name} (dtype ${dtype}, shape [${spec.shape.join(', ')}]) has no fixed size`,
    );
  return size * per;
}

function toBuffer(data: ModelArtifacts['weightData']): Buffer {
  if (data === undefined) return Buffer.alloc(0);
  const parts = Array.isArray(data) ? data : [data];
  return Buffer.concat(parts.map((p) => Buffer.from(p)));
}

async function writeAtomic(path: string, data: string | Buffer): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  await writeFile(tmp, data);
  await rename(tmp, path);
}

/** A tf.io handler bound to a directory. */
export function directoryHandler(dir: string): IOHandler {
  return {
    async save(artifacts) {
      await mkdir(dir, { recursive: true });
      const weights = toBuffer(artifacts.weightData);
      const modelJson: ModelJSON = {
        modelTopology: artifacts.modelTopology ?? {},
        format: artifacts.format ?? 'layers-model',
        generatedBy: artifacts.generatedBy ?? 'preempt',
        convertedBy: artifacts.convertedBy ?? null,
        weightsManifest: [{ paths: [WEIGHTS_BIN], weights: artifacts.weightSpecs ?? [] }],
      };
      if (artifacts.trainingConfig) modelJson.trainingConfig = artifacts.trainingConfig;
      if (artifacts.userDefinedMetadata) modelJson.userDefinedMetadata = artifacts.userDefinedMetadata;
      await writeAtomic(join(dir, WEIGHTS_BIN), weights);
      await writeAtomic(join(dir, MODEL_JSON), JSON.stringify(modelJson));
      return {
        modelArtifactsInfo: {
          dateSaved: new Date(),
          modelTopologyType: 'JSON',
          weightDataBytes: weights.byteLength,
        },
      };
    },
    async load() {
      const jsonPath = join(dir, MODEL_JSON);
      let bytes: Buffer;
      try {
        bytes = await readFile(jsonPath);
      } catch (e) {
        throw new ModelLoadError(`cannot read ${jsonPath}: ${(e as Error).message}`, { cause: e });
      }
      const json = parseModelJson(bytes, jsonPath);
      const names = weightFileNames(json, jsonPath);
      const weights: Buffer[] = [];
      for (const name of names) {
        const path = join(dir, name);
        try {
          weights.push(await readFile(path));
        } catch (e) {
          throw new ModelLoadError(`cannot read ${path}: ${(e as Error).message}`, { cause: e });
        }
      }
      return networkArtifacts(dir, json, names, weights);
    },
  };
}

/**
 * The network's files as read once: `model.json` and the weight files its manifest names, by their name
 * relative to the model directory.
 */
export type NetworkFiles = Readonly<Record<string, Uint8Array>>;

/** A tf.io handler that loads the network from files already in memory (`dir` only names them in errors). */
export function filesHandler(dir: string, files: NetworkFiles): IOHandler {
  return {
    async load() {
      const file = (name: string): Uint8Array => {
        const bytes = Object.hasOwn(files, name) ? files[name] : undefined;
        if (bytes === undefined)
          throw new ModelLoadError(`cannot read ${join(dir, name)}: not among the files read`);
        return bytes;
      };
      const jsonPath = join(dir, MODEL_JSON);
      const json = parseModelJson(file(MODEL_JSON), jsonPath);
      const names = weightFileNames(json, jsonPath);
      return networkArtifacts(dir, json, names, names.map(file));
    },
  };
}

/** model.json's content, refused (naming `jsonPath`) unless it is JSON with a topology and a weights manifest. */
export function parseModelJson(bytes: Uint8Array, jsonPath: string): ModelJSON {
  let json: ModelJSON;
  try {
    json = JSON.parse(
      Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'),
    ) as ModelJSON;
  } catch (e) {
    throw new ModelLoadError(`${jsonPath} is not valid JSON (${(e as Error).message})`);
  }
  if (!Array.isArray(json?.weightsManifest) || json.modelTopology === undefined)
    throw new ModelLoadError(`${jsonPath}: no modelTopology or weightsManifest`);
  return json;
}

/** The weight files a manifest names, in order: paths relative to the model directory, never outside it. */
export function weightFileNames(json: ModelJSON, jsonPath: string): string[] {
  const names: string[] = [];
  for (const group of json.weightsManifest)
    for (const p of Array.isArray(group?.paths) ? group.paths : []) {
      const n = typeof p === 'string' ? normalize(p) : '';
      if (typeof p !== 'string' || isAbsolute(p) || n === '.' || n === '..' || n.startsWith(`..${sep}`))
        throw new ModelLoadError(
          `${jsonPath}: weight path ${JSON.stringify(p)} is not a file inside the model directory`,
        );
      names.push(p);
    }
  return names;
}

/** What TF.js builds the network from, refused when the weights are not the size the manifest describes. */
function networkArtifacts(
  dir: string,
  json: ModelJSON,
  names: readonly string[],
  weights: readonly Uint8Array[],
): ModelArtifacts {
  const jsonPath = join(dir, MODEL_JSON);
  const manifest = json.weightsManifest;
  let expected = 0;
  for (const group of manifest) for (const spec of group.weights) expected += weightBytes(spec, jsonPath);
  const all = Buffer.concat(weights);
  // TF.js would ignore bytes past the last weight: any size but the manifest's is another model's weights
  if (all.byteLength !== expected)
    throw new ModelLoadError(
      `${names.map((n) => join(dir, n)).join(', ') || dir}: ${all.byteLength} bytes of weights where ${jsonPath} describes ${expected}: the weights do not belong to this model.json (or are truncated)`,
    );
  const artifacts: ModelArtifacts = {
    modelTopology: json.modelTopology,
    format: json.format,
    generatedBy: json.generatedBy,
    convertedBy: json.convertedBy,
    weightSpecs: manifest.flatMap((g) => g.weights),
    weightData: all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength),
  };
  if (json.trainingConfig) artifacts.trainingConfig = json.trainingConfig;
  if (json.userDefinedMetadata) artifacts.userDefinedMetadata = json.userDefinedMetadata;
  return artifacts;
}

export async function saveLayersModel(model: tfTypes.LayersModel, dir: string): Promise<void> {
  await model.save(directoryHandler(dir));
}

/** The network in `dir`, read from the directory (see `readModelFiles` for a model directory read whole). */
export async function loadLayersModel(dir: string): Promise<tfTypes.LayersModel> {
  const { tf } = await initTf();
  return tf.loadLayersModel(directoryHandler(dir));
}

/** The network from its files already read (`dir` names them in errors). */
export async function loadLayersModelFromFiles(
  dir: string,
  files: NetworkFiles,
): Promise<tfTypes.LayersModel> {
  const { tf } = await initTf();
  return tf.loadLayersModel(filesHandler(dir, files));
}
