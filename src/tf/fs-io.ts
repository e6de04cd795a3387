/**
 * Saving and loading TF.js layers models to a directory (`model.json` + `weights.bin`) with plain
 * node:fs, so that it works on every backend, without @tensorflow/tfjs-node's `file://` handler.
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
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
      let text: string;
      try {
        text = await readFile(jsonPath, 'utf8');
      } catch (e) {
        throw new ModelLoadError(`cannot read ${jsonPath}: ${(e as Error).message}`, { cause: e });
      }
      let json: ModelJSON;
      try {
        json = JSON.parse(text) as ModelJSON;
      } catch (e) {
        throw new ModelLoadError(`${jsonPath} is not valid JSON (${(e as Error).message})`);
      }
      const manifest = json.weightsManifest;
      if (!Array.isArray(manifest) || json.modelTopology === undefined)
        throw new ModelLoadError(`${jsonPath}: no modelTopology or weightsManifest`);
      const buffers: Buffer[] = [];
      const paths: string[] = [];
      let expected = 0;
      for (const group of manifest) {
        for (const spec of group.weights) expected += weightBytes(spec, jsonPath);
        for (const p of group.paths) {
          const path = join(dir, p);
          paths.push(path);
          try {
            buffers.push(await readFile(path));
          } catch (e) {
            throw new ModelLoadError(`cannot read ${path}: ${(e as Error).message}`, { cause: e });
          }
        }
      }
      const all = Buffer.concat(buffers);
      // TF.js would ignore bytes past the last weight: any size but the manifest's is another model's weights
      if (all.byteLength !== expected)
        throw new ModelLoadError(
          `${paths.join(', ') || dir}: ${all.byteLength} bytes of weights where ${jsonPath} describes ${expected}: the weights do not belong to this model.json (or are truncated)`,
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
    },
  };
}

export async function saveLayersModel(model: tfTypes.LayersModel, dir: string): Promise<void> {
  await model.save(directoryHandler(dir));
}

export async function loadLayersModel(dir: string): Promise<tfTypes.LayersModel> {
  const { tf } = await initTf();
  return tf.loadLayersModel(directoryHandler(dir));
}
