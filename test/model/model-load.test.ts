import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FEATURE_COUNT, FEATURE_NEUTRAL, featureSchemaInfo } from '../../src/features/schema.js';
import { ModelLoadError, readCompatibleMetadata, saveModelDir } from '../../src/model/artifacts.js';
import { createModel, DEFAULT_ARCHITECTURE } from '../../src/model/create-model.js';
import { Predictor } from '../../src/model/predictor.js';
import { loadLayersModel } from '../../src/tf/fs-io.js';
import { testModelMetadata } from '../helpers/model-metadata.js';

const dir = mkdtempSync(join(tmpdir(), 'preempt-model-load-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const GOOD = join(dir, 'good');
const identity = () => ({ mean: Array(FEATURE_COUNT).fill(0), std: Array(FEATURE_COUNT).fill(1) });

beforeAll(async () => {
  const model = await createModel(featureSchemaInfo(), DEFAULT_ARCHITECTURE, 4);
  await saveModelDir(
    GOOD,
    model,
    testModelMetadata({ normalisation: identity(), calibration: { method: 'platt', a: 1, b: 0 } }),
  );
  model.dispose();
});

/** A copy of the good model directory, then `change` applied to it. */
function variant(name: string, change: (d: string) => void): string {
  const d = join(dir, name);
  cpSync(GOOD, d, { recursive: true });
  change(d);
  return d;
}

/** What loading `d` throws ('loaded' if it loads): a loaded Predictor is never handed to `expect`. */
async function loadError(d: string, opts: { allowUnfinished?: boolean } = {}): Promise<Error | 'loaded'> {
  try {
    (await Predictor.load(d, opts)).dispose();
    return 'loaded';
  } catch (e) {
    return e as Error;
  }
}

/** Loading `d` fails with a ModelLoadError whose message matches `message`. */
async function expectLoadError(d: string, message: RegExp | string): Promise<void> {
  const e = await loadError(d);
  expect(e).toBeInstanceOf(ModelLoadError);
  if (typeof message === 'string') expect((e as Error).message).toContain(message);
  else expect((e as Error).message).toMatch(message);
}

function editMetadata(d: string, edit: (meta: Record<string, unknown>) => void): void {
  const path = join(d, 'metadata.json');
  const meta = JSON.parse(readFileSync(path, 'utf8'));
  edit(meta);
  writeFileSync(path, JSON.stringify(meta));
}

describe('loading a model directory checks that its files belong together', () => {
  it('loads the good model and the shipped models/default', async () => {
    for (const d of [GOOD, join(import.meta.dirname, '../../models/default')]) {
      const p = await Predictor.load(d);
      const pd = p.score(FEATURE_NEUTRAL.slice(), 1);
      expect(pd[0]).toBeGreaterThan(0);
      expect(pd[0]).toBeLessThan(1);
      p.dispose();
    }
  });

  it('refuses a weights.bin of another size than model.json describes (also without digests to check)', async () => {
    const bin = readFileSync(join(GOOD, 'weights.bin'));
    // with its digests the metadata refuses any other weights.bin (model-digests.test.ts): without them,
    // as in older and hand-built models, the size check does
    const doubled = variant('doubled', (d) => {
      writeFileSync(join(d, 'weights.bin'), Buffer.concat([bin, bin]));
      editMetadata(d, (m) => {
        delete m.digests;
      });
    });
    await expectLoadError(
      doubled,
      `weights.bin: ${2 * bin.byteLength} bytes of weights where ${join(doubled, 'model.json')} describes ${bin.byteLength}`,
    );
    // the TF.js loader itself refuses it, not only the Predictor
    await expect(loadLayersModel(doubled)).rejects.toBeInstanceOf(ModelLoadError);
    const short = variant('short', (d) => {
      writeFileSync(join(d, 'weights.bin'), bin.subarray(0, bin.byteLength - 4));
      editMetadata(d, (m) => {
        delete m.digests;
      });
    });
    await expectLoadError(short, /bytes of weights where/);
  });

  it('refuses a normalisation of the wrong length, or with a std that is not above 0', async () => {
    const zero = variant('std-zero', (d) =>
      editMetadata(d, (m) => {
        m.normalisation = { mean: identity().mean, std: Array(FEATURE_COUNT).fill(0) };
      }),
    );
    await expectLoadError(
      zero,
      /metadata\.json: normalisation\.std\[0\] \(\w+\) is 0: expected a finite number above 0/,
    );
    const short = variant('std-short', (d) =>
      editMetadata(d, (m) => {
        m.normalisation = { mean: identity().mean, std: identity().std.slice(1) };
      }),
    );
    await expectLoadError(
      short,
      `normalisation.std has ${FEATURE_COUNT - 1} values, the feature schema ${FEATURE_COUNT} features`,
    );
    const negative = variant('std-negative', (d) =>
      editMetadata(d, (m) => {
        const std = identity().std;
        std[3] = -2;
        m.normalisation = { mean: identity().mean, std };
      }),
    );
    await expect(readCompatibleMetadata(negative)).rejects.toThrow(/normalisation\.std\[3\] .* is -2/);
    // an overflowing number in the JSON (Infinity) is refused too
    const infinite = variant('mean-infinite', (d) => {
      const path = join(d, 'metadata.json');
      writeFileSync(path, readFileSync(path, 'utf8').replace(/"mean": \[\n\s*0,/, '"mean": [1e999,'));
    });
    await expect(readCompatibleMetadata(infinite)).rejects.toThrow(/field normalisation\.mean\.0/);
  });

  it('names the file when metadata.json or model.json is not valid JSON', async () => {
    const truncate = (file: string) => (d: string) => {
      const text = readFileSync(join(d, file), 'utf8');
      writeFileSync(join(d, file), text.slice(0, text.length >> 1));
    };
    const meta = variant('bad-metadata', truncate('metadata.json'));
    await expectLoadError(meta, `${join(meta, 'metadata.json')} is not valid JSON`);
    const model = variant('bad-model-json', truncate('model.json'));
    await expectLoadError(model, `${join(model, 'model.json')} is not valid JSON`);
  });

  it('refuses a network whose input width is not the metadata feature count', async () => {
    const narrow = await createModel({ names: featureSchemaInfo().names.slice(1) }, DEFAULT_ARCHITECTURE, 4);
    const d = join(dir, 'narrow');
    await saveModelDir(
      d,
      narrow,
      testModelMetadata({ normalisation: identity(), calibration: { method: 'platt', a: 1, b: 0 } }),
    );
    narrow.dispose();
    await expectLoadError(
      d,
      `takes ${FEATURE_COUNT - 1} inputs, metadata.json has ${FEATURE_COUNT} features`,
    );
  });

  it("refuses an unfinished training run's directory (metadata without metrics), unless the run itself asks", async () => {
    const unfinished = variant('unfinished', (d) =>
      editMetadata(d, (m) => {
        m.training = { epochsRun: 3, bestEpoch: 2 };
      }),
    );
    await expectLoadError(unfinished, /metadata\.json is from a training run that did not finish/);
    expect(await loadError(unfinished, { allowUnfinished: true })).toBe('loaded');
    // the same run with its metrics recorded loads
    const finished = variant('finished', (d) =>
      editMetadata(d, (m) => {
        m.training = { epochsRun: 3, bestEpoch: 2 };
        m.metrics = { model: { rocAuc: 0.8 }, baselines: {}, split: 'test' };
      }),
    );
    expect(await loadError(finished)).toBe('loaded');
  });
});
