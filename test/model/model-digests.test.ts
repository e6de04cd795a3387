/**
 * A model directory is loaded as one consistent set of files: metadata.json records the sha256 digests of
 * model.json and weights.bin, a load checks the network it read against them, reads the set again while the
 * directory is being replaced, and refuses files that do not belong together. Models without digests load
 * unverified, as before.
 */
import { cpSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FEATURE_COUNT, FEATURE_NEUTRAL, featureSchemaInfo } from '../../src/features/schema.js';
import { ModelLoadError, readMetadata, saveModelDir, writeMetadata } from '../../src/model/artifacts.js';
import { createModel, DEFAULT_ARCHITECTURE } from '../../src/model/create-model.js';
import { READ_ATTEMPTS, readModelFiles } from '../../src/model/model-files.js';
import { Predictor } from '../../src/model/predictor.js';
import { loadScorer } from '../../src/model/scorer.js';
import { Rng } from '../../src/sim/random.js';
import { testModelMetadata } from '../helpers/model-metadata.js';

const dir = mkdtempSync(join(tmpdir(), 'preempt-model-digests-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** two models of the same architecture: other weights (seed), other calibration */
const A = join(dir, 'a');
const B = join(dir, 'b');
const identity = () => ({ mean: Array(FEATURE_COUNT).fill(0), std: Array(FEATURE_COUNT).fill(1) });

beforeAll(async () => {
  for (const [out, seed, a] of [
    [A, 4, 1],
    [B, 5, 2],
  ] as const) {
    const model = await createModel(featureSchemaInfo(), DEFAULT_ARCHITECTURE, seed);
    await saveModelDir(
      out,
      model,
      testModelMetadata({
        name: out === A ? 'a' : 'b',
        normalisation: identity(),
        calibration: { method: 'platt', a, b: 0 },
      }),
    );
    model.dispose();
  }
});

/** A copy of model A, then `change` applied to it. */
function variant(name: string, change: (d: string) => void = () => {}): string {
  const d = join(dir, name);
  cpSync(A, d, { recursive: true });
  change(d);
  return d;
}

/** 64 rows around the neutral feature values */
const ROWS = 64;
const X = (() => {
  const rng = new Rng(3, 'model-digests');
  const x = new Float32Array(ROWS * FEATURE_COUNT);
  for (let r = 0; r < ROWS; r++)
    for (let j = 0; j < FEATURE_COUNT; j++)
      x[r * FEATURE_COUNT + j] = (FEATURE_NEUTRAL[j] ?? 0) + rng.normal();
  return x;
})();

/** The pd of X by the model loaded from `source`. */
async function scores(source: Parameters<typeof Predictor.load>[0]): Promise<number[]> {
  const p = await Predictor.load(source);
  try {
    return Array.from(p.score(X, ROWS));
  } finally {
    p.dispose();
  }
}

/** What loading `d` throws ('loaded' if it loads). */
async function loadError(d: string): Promise<Error | 'loaded'> {
  try {
    (await Predictor.load(d)).dispose();
    return 'loaded';
  } catch (e) {
    return e as Error;
  }
}

/** A file reader counting the reads of each file name, with `before` run ahead of each read. */
function countingReader(before: (path: string, nth: number) => void = () => {}) {
  const reads = new Map<string, number>();
  const readFn = async (path: string) => {
    const name = basename(path);
    const nth = (reads.get(name) ?? 0) + 1;
    reads.set(name, nth);
    before(path, nth);
    return readFile(path);
  };
  return { reads, readFile: readFn };
}

describe('a model directory is read as one consistent set of files', () => {
  it('the two models differ, have the same architecture, and each loads verified', async () => {
    expect(readFileSync(join(A, 'weights.bin')).byteLength).toBe(
      readFileSync(join(B, 'weights.bin')).byteLength,
    );
    expect(await scores(A)).not.toEqual(await scores(B));
    for (const d of [A, B, join(import.meta.dirname, '../../models/default')])
      expect((await readModelFiles(d)).verified).toBe(true);
  });

  it("refuses a weights.bin swapped for another model's of the same architecture, naming weights.bin", async () => {
    const d = variant('swapped-weights', (v) => cpSync(join(B, 'weights.bin'), join(v, 'weights.bin')));
    const e = await loadError(d);
    expect(e).toBeInstanceOf(ModelLoadError);
    expect((e as Error).message).toContain(
      `${join(d, 'weights.bin')} does not match the sha256 digest ${join(d, 'metadata.json')} records for it`,
    );
    expect((e as Error).message).toMatch(
      /the directory changed while it was being read .* or its files are damaged/,
    );
    // the scorer every command and the service load refuses it too
    await expect(loadScorer(d, { workers: 0 })).rejects.toThrow(
      /weights\.bin does not match the sha256 digest/,
    );
    // read again a bounded number of times (a replacement in progress would have ended), then refused
    const counted = countingReader();
    await expect(readModelFiles(d, { readFile: counted.readFile, backoffMs: 0 })).rejects.toThrow(
      `(read ${READ_ATTEMPTS} times)`,
    );
    expect(counted.reads.get('weights.bin')).toBe(READ_ATTEMPTS);
  });

  it("refuses a metadata.json from another model beside this model's network", async () => {
    const d = variant('other-metadata', (v) => cpSync(join(B, 'metadata.json'), join(v, 'metadata.json')));
    // the first file of the network that differs between the two is named (model.json may be the same bytes)
    const first = readFileSync(join(A, 'model.json')).equals(readFileSync(join(B, 'model.json')))
      ? 'weights.bin'
      : 'model.json';
    const e = await loadError(d);
    expect(e).toBeInstanceOf(ModelLoadError);
    expect((e as Error).message).toContain(`${join(d, first)} does not match the sha256 digest`);
  });

  it('a load racing a replacement of the directory (by rename) reads it again and gets the new model whole', async () => {
    const live = variant('live');
    const next = join(dir, 'live.next');
    cpSync(B, next, { recursive: true });
    // the directory is swapped after metadata.json of the old model was read, before its model.json is
    const counted = countingReader((path, nth) => {
      if (path === join(live, 'model.json') && nth === 1) {
        renameSync(live, `${live}.old`);
        renameSync(next, live);
      }
    });
    const files = await readModelFiles(live, { readFile: counted.readFile, backoffMs: 0 });
    // the first read was mixed (metadata.json read twice per attempt: before and after the network)
    expect(counted.reads.get('metadata.json')).toBe(4);
    expect(files.meta.name).toBe('b');
    expect(files.verified).toBe(true);
    expect(
      Buffer.from(files.network['weights.bin'] as Uint8Array).equals(readFileSync(join(B, 'weights.bin'))),
    ).toBe(true);
    expect(await scores(files)).toEqual(await scores(B));
  });

  it('a load that read a weights.bin of another model (a copy in progress) reads it again', async () => {
    const d = variant('copy-in-progress');
    const weights = join(d, 'weights.bin');
    const original = readFileSync(weights);
    // on the first read, weights.bin is another model's; restored before the next read
    const counted = countingReader((path, nth) => {
      if (path === weights && nth === 1) cpSync(join(B, 'weights.bin'), weights);
      if (path === weights && nth === 2) writeFileSync(weights, original);
    });
    const files = await readModelFiles(d, { readFile: counted.readFile, backoffMs: 0 });
    expect(counted.reads.get('weights.bin')).toBe(2);
    expect(files.meta.name).toBe('a');
    expect(await scores(files)).toEqual(await scores(A));
  });

  it('a model without digests (older or hand-built) loads as before, unverified', async () => {
    const d = variant('no-digests', (v) => {
      const path = join(v, 'metadata.json');
      const meta = JSON.parse(readFileSync(path, 'utf8'));
      expect(meta.digests).toBeDefined();
      delete meta.digests;
      writeFileSync(path, JSON.stringify(meta));
    });
    const files = await readModelFiles(d);
    expect(files.verified).toBe(false);
    expect(await scores(d)).toEqual(await scores(A));
  });

  it('a load that finds no metadata.json mid-promote (between the renames, or an in-place promote) reads again', async () => {
    for (const at of [1, 2]) {
      // metadata.json's first read (before the network) or its second (after it) finds no directory: the
      // old one renamed aside, the new one not yet in place; it is renamed in before the next read
      const live = variant(`gap-${at}`);
      const next = join(dir, `gap-${at}.next`);
      cpSync(B, next, { recursive: true });
      let gap = false;
      const counted = countingReader((path, nth) => {
        if (path === join(live, 'metadata.json') && nth === at) {
          renameSync(live, `${live}.old`);
          gap = true;
        } else if (gap) {
          renameSync(next, live);
          gap = false;
        }
      });
      const files = await readModelFiles(live, { readFile: counted.readFile, backoffMs: 0 });
      expect(files.meta.name).toBe('b');
      expect(files.verified).toBe(true);
      expect(await scores(files)).toEqual(await scores(B));
    }
  });

  it('a directory with no model is refused after the bounded reads, saying so', async () => {
    const counted = countingReader();
    const missing = join(dir, 'never-written');
    await expect(readModelFiles(missing, { readFile: counted.readFile, backoffMs: 0 })).rejects.toThrow(
      new RegExp(`^no model at ${missing}: .*ENOENT.*\\(read ${READ_ATTEMPTS} times\\)$`),
    );
    expect(counted.reads.get('metadata.json')).toBe(READ_ATTEMPTS);
  });

  it('the scorer says whether its files were verified (the service shows it in GET /v1/model)', async () => {
    const verified = await loadScorer(A, { workers: 0 });
    const plain = await loadScorer(
      variant('no-digests-scorer', (v) => {
        const path = join(v, 'metadata.json');
        const meta = JSON.parse(readFileSync(path, 'utf8'));
        delete meta.digests;
        writeFileSync(path, JSON.stringify(meta));
      }),
      { workers: 0 },
    );
    try {
      expect(verified.info.filesVerified).toBe(true);
      expect(plain.info.filesVerified).toBe(false);
    } finally {
      await verified.close();
      await plain.close();
    }
  });

  it('metadata written for an evaluated network is refused if the network changed since, leaving metadata.json as it was', async () => {
    const d = variant('changed-after-evaluation');
    const meta = await readMetadata(d);
    const evaluated = meta.digests as Record<string, string>;
    const before = readFileSync(join(d, 'metadata.json'));
    // another model's weights of the same architecture land in the directory after the evaluation
    cpSync(join(B, 'weights.bin'), join(d, 'weights.bin'));
    const run = writeMetadata(d, { ...meta, name: 'with-metrics' }, { expectDigests: evaluated });
    await expect(run).rejects.toThrow(ModelLoadError);
    await expect(run).rejects.toThrow(/weights\.bin changed since the network was saved and evaluated/);
    expect(readFileSync(join(d, 'metadata.json')).equals(before)).toBe(true);
    // the same network as evaluated: written, with those digests
    cpSync(join(A, 'weights.bin'), join(d, 'weights.bin'));
    const written = await writeMetadata(d, { ...meta, name: 'with-metrics' }, { expectDigests: evaluated });
    expect(written.digests).toEqual(evaluated);
    expect((await readMetadata(d)).name).toBe('with-metrics');
  });
});
