/**
 * A model directory read whole, once: `metadata.json`, `model.json` and the weight files `model.json` names,
 * into memory as one consistent set. Every load builds its model from such a set (the scorer and its pool's
 * worker threads, score-history, evaluate, the backtest's workers, training's own evaluation), never by
 * reading the directory again.
 *
 * Why: the files are read one by one, and training replaces a model directory by a rename (or file by file,
 * in place), so a load racing a replacement could take `metadata.json` from one model and the network from
 * the other; with the same architecture nothing else notices, and the network is scored with another
 * model's normalisation, second stage and calibration. A set is accepted when `metadata.json` reads the same
 * before and after the network files and the network's bytes match the sha256 digests the metadata records
 * (`digests`, written by `writeMetadata`). Otherwise it is read again (a replacement in progress), up to
 * `READ_ATTEMPTS` times with a short doubling pause, then refused with a ModelLoadError naming the file that
 * does not match. A model whose metadata records no digests (older models, hand-built ones) loads
 * unverified (`verified: false`): only the before-and-after check of `metadata.json` applies to it.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { MODEL_JSON, type NetworkFiles, parseModelJson, weightFileNames } from '../tf/fs-io.js';
import { METADATA_JSON, type ModelMetadata, parseMetadata } from './artifacts.js';
import { sha256Digest } from './digests.js';
import { ModelLoadError } from './errors.js';

/** reads of the whole set before a load gives up */
export const READ_ATTEMPTS = 4;
/** ms: the pause before the second read, doubled before each further one (50 + 100 + 200 at most) */
export const READ_BACKOFF_MS = 50;

export interface ModelFiles {
  /** the directory read (named in errors) */
  dir: string;
  /** metadata.json, validated (schema, normalisation), from the same read as `network` */
  meta: ModelMetadata;
  /** the bytes of model.json and of each weight file it names, by name */
  network: NetworkFiles;
  /** the metadata records digests and the network matched them (false: an older or hand-built model) */
  verified: boolean;
}

export interface ReadModelOptions {
  /** reads one file (default: node:fs readFile); tests pass one that changes the directory between reads */
  readFile?: (path: string) => Promise<Uint8Array>;
  /** default READ_ATTEMPTS */
  attempts?: number;
  /** ms, default READ_BACKOFF_MS */
  backoffMs?: number;
}

/** A read that saw the directory change (or files that do not belong together): worth reading again. */
class Inconsistent {
  constructor(readonly error: ModelLoadError) {}
}

const errno = (e: unknown) => (e as NodeJS.ErrnoException).code;

const text = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('utf8');

/** Read the model directory `dir` as one consistent set of files (see the module comment). */
export async function readModelFiles(dir: string, opts: ReadModelOptions = {}): Promise<ModelFiles> {
  const attempts = opts.attempts ?? READ_ATTEMPTS;
  const backoffMs = opts.backoffMs ?? READ_BACKOFF_MS;
  if (!(Number.isInteger(attempts) && attempts >= 1 && backoffMs >= 0))
    throw new RangeError(
      `attempts must be a whole number >= 1 and backoffMs >= 0, got ${attempts}, ${backoffMs}`,
    );
  const read = opts.readFile ?? ((path: string) => readFile(path));
  for (let attempt = 1; ; attempt++) {
    const got = await readOnce(dir, read);
    if (!(got instanceof Inconsistent)) return got;
    if (attempt >= attempts) {
      const e = got.error;
      throw new ModelLoadError(
        `${e.message} (read ${attempt} times)`,
        e.cause === undefined ? {} : { cause: e.cause },
      );
    }
    if (backoffMs > 0) await sleep(backoffMs * 2 ** (attempt - 1));
  }
}

async function readOnce(
  dir: string,
  read: (path: string) => Promise<Uint8Array>,
): Promise<ModelFiles | Inconsistent> {
  const metaPath = join(dir, METADATA_JSON);
  const jsonPath = join(dir, MODEL_JSON);
  // a missing file, metadata.json included: the directory may be being replaced (a swap leaves no directory
  // between its two renames, an in-place promote removes metadata.json first and writes it last), so the set
  // is read again; a model that is really missing is reported after the last read (about 350 ms)
  const get = async (path: string, missing: string): Promise<Uint8Array | Inconsistent> => {
    try {
      return await read(path);
    } catch (e) {
      const error = new ModelLoadError(`${missing}: ${(e as Error).message}`, { cause: e });
      if (errno(e) === 'ENOENT') return new Inconsistent(error);
      throw error;
    }
  };
  const before = await get(metaPath, `no model at ${dir}`);
  if (before instanceof Inconsistent) return before;
  const meta = parseMetadata(metaPath, text(before));
  const json = await get(jsonPath, `cannot read ${jsonPath}`);
  if (json instanceof Inconsistent) return json;
  const names = weightFileNames(parseModelJson(json, jsonPath), jsonPath);
  const network: Record<string, Uint8Array> = { [MODEL_JSON]: json };
  for (const name of names) {
    const bytes = await get(join(dir, name), `cannot read ${join(dir, name)}`);
    if (bytes instanceof Inconsistent) return bytes;
    network[name] = bytes;
  }
  const after = await get(metaPath, `no model at ${dir}`);
  if (after instanceof Inconsistent) return after;
  if (Buffer.compare(before, after) !== 0)
    return new Inconsistent(
      new ModelLoadError(
        `${metaPath} changed while the model in ${dir} was being read: the directory was being replaced`,
      ),
    );
  const digests = meta.digests;
  if (digests === undefined) return { dir, meta, network, verified: false };
  const mismatch = (name: string, what: string) =>
    new Inconsistent(
      new ModelLoadError(
        `${join(dir, name)} ${what}: the directory changed while it was being read (a model being replaced), or its files are damaged or come from different models`,
      ),
    );
  for (const [name, bytes] of Object.entries(network)) {
    const want = Object.hasOwn(digests, name) ? digests[name] : undefined;
    if (want === undefined) return mismatch(name, `has no digest in ${metaPath}`);
    if (sha256Digest(bytes) !== want)
      return mismatch(name, `does not match the sha256 digest ${metaPath} records for it`);
  }
  for (const name of Object.keys(digests))
    if (!Object.hasOwn(network, name))
      return mismatch(name, `has a digest in ${metaPath}, but ${jsonPath} does not name it`);
  return { dir, meta, network, verified: true };
}
