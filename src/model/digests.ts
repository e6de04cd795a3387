/**
 * The sha256 digests a model's metadata.json records of the network's files (`digests`: `model.json` and each
 * weight file its manifest names, as `sha256:<hex>`), so that a load can tell a consistent set of files from
 * one mixed with another model's (a directory replaced while it was read, or files copied between models).
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { MODEL_JSON, parseModelJson, weightFileNames } from '../tf/fs-io.js';
import { ModelLoadError } from './errors.js';

export const DIGEST_PATTERN = /^sha256:[0-9a-f]{64}$/;

export function sha256Digest(bytes: Uint8Array): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

/** The digests of the network files in `dir` as they are on disk now (what `writeMetadata` records). */
export async function networkDigests(dir: string): Promise<Record<string, string>> {
  const read = async (name: string) => {
    try {
      return await readFile(join(dir, name));
    } catch (e) {
      throw new ModelLoadError(`cannot record the digests of ${dir}'s network: ${(e as Error).message}`, {
        cause: e,
      });
    }
  };
  const json = await read(MODEL_JSON);
  const digests: Record<string, string> = { [MODEL_JSON]: sha256Digest(json) };
  for (const name of weightFileNames(parseModelJson(json, join(dir, MODEL_JSON)), join(dir, MODEL_JSON)))
    digests[name] = sha256Digest(await read(name));
  return digests;
}
