import {
  chmodSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { open } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { readCompatibleMetadata } from '../../src/model/artifacts.js';
import { promoteDir, stagingDir } from '../../training/model-dir.js';
import { assertTrained, runTraining, type TrainOptions } from '../../training/train.js';
import { useSimHistories } from '../helpers/sim-history.js';
import { testTempDir } from '../helpers/temp-dir.js';

/** Every file of a directory and its bytes. */
function snapshot(d: string): Map<string, Buffer> {
  return new Map(readdirSync(d).map((f) => [f, readFileSync(join(d, f))]));
}

const SPEC_EXAMPLE = join(import.meta.dirname, '../fixtures/spec-example.jsonl');

const MODEL_FILES = [
  'baselines.svg',
  'importance.svg',
  'metadata.json',
  'model.json',
  'pr.svg',
  'reliability.svg',
  'report.md',
  'roc.svg',
  'training.svg',
  'weights.bin',
];

describe('a training run writes its model directory whole or not at all', () => {
  const { dir, files } = useSimHistories('model-out');
  const job = (out: string, seed: number) => ({
    events: [files['may-2021'] as string, files['flash-crash'] as string],
    validate: [files['black-thursday-2020'] as string],
    out,
    epochs: 1,
    seed,
  });

  it('a run failing late leaves the existing model byte-identical, and a complete run replaces it', async () => {
    const parent = join(dir, 'models');
    const out = join(parent, 'mine');
    await runTraining(job(out, 7));
    // a file of the old directory: kept by the failed run, gone once the directory is replaced
    writeFileSync(join(out, 'notes.txt'), 'old');
    // a new directory gets the usual mode (mkdtemp's 0700 would hide the model from another user)
    expect(statSync(out).mode & 0o777).toBe(0o777 & ~process.umask());
    chmodSync(out, 0o750);
    const before = snapshot(out);
    expect([...before.keys()].sort()).toEqual([...MODEL_FILES, 'notes.txt'].sort());

    // fails after the network, the metadata and the metrics are written, as the report is about to be
    await expect(
      runTraining({
        ...job(out, 8),
        onProgress: (p) => {
          if (p.phase === 'report') throw new Error('injected report failure');
        },
      }),
    ).rejects.toThrow('injected report failure');
    expect(snapshot(out)).toEqual(before);
    expect(readdirSync(parent)).toEqual(['mine']);
    expect((await readCompatibleMetadata(out)).seed).toBe(7);

    const result = await runTraining(job(out, 8));
    expect(result.dir).toBe(out);
    expect(readdirSync(parent)).toEqual(['mine']);
    expect(readdirSync(out).sort()).toEqual(MODEL_FILES);
    // a replaced directory keeps the mode of the one it replaces
    expect(statSync(out).mode & 0o777).toBe(0o750);
    const meta = await readCompatibleMetadata(out);
    expect(meta.seed).toBe(8);
    expect(meta.name).toBe('mine');
    expect(meta.createdAt).toBe(result.metadata.createdAt);
    expect(meta.metrics.model.rocAuc).toBeGreaterThan(0);
    expect(readFileSync(join(out, 'weights.bin')).equals(before.get('weights.bin') as Buffer)).toBe(false);
  }, 300_000);

  it('refuses zero or negative epochs, bad hidden sizes and an output it cannot write, before reading any history', async () => {
    const tmp = testTempDir('model-out');
    const out = join(tmp, 'model');
    const phases: string[] = [];
    /** the run's error message, having checked that it read nothing */
    const refusal = async (opts: Partial<TrainOptions>): Promise<string> => {
      try {
        await runTraining({
          events: [SPEC_EXAMPLE],
          out,
          ...opts,
          onProgress: (p) => phases.push(p.phase),
        });
        return 'trained';
      } catch (e) {
        return (e as Error).message;
      }
    };
    for (const epochs of [0, -3, 1.5, 1001])
      expect(await refusal({ epochs })).toBe(`epochs must be an integer from 1 to 1000, got ${epochs}`);
    for (const hidden of [[32, 0], [Number.NaN]])
      expect(await refusal({ hidden })).toMatch(/^hidden layer sizes must be positive integers/);
    // the parent is a file
    const file = join(tmp, 'a-file');
    writeFileSync(file, 'x');
    expect(await refusal({ out: join(file, 'model') })).toMatch(
      /^cannot write the model to .*a-file\/model: cannot create its parent directory .*a-file is not a directory/,
    );
    // the output is a file, a directory holding something other than a model, or a symbolic link
    expect(await refusal({ out: file })).toMatch(/it exists and is not a directory/);
    const other = join(tmp, 'other');
    mkdirSync(other);
    writeFileSync(join(other, 'thesis.tex'), 'x');
    expect(await refusal({ out: other })).toMatch(/it exists and is not a model directory/);
    expect(readdirSync(other)).toEqual(['thesis.tex']);
    const link = join(tmp, 'link');
    symlinkSync(other, link);
    expect(await refusal({ out: link })).toMatch(/it is a symbolic link/);
    expect(phases).toEqual([]);
    expect(existsSync(out)).toBe(false);
  });

  it('in place (a mount point, or a parent it cannot write): files move in, metadata last, stale ones go', async () => {
    const tmp = testTempDir('model-in-place');
    const target = join(tmp, 'volume');
    mkdirSync(target);
    for (const f of ['metadata.json', 'weights.bin', 'stale.svg']) writeFileSync(join(target, f), 'old');
    const out = { target, inPlace: true, mode: 0o750 };
    const staged = await stagingDir(out);
    expect(dirname(staged)).toBe(target);
    expect(statSync(staged).mode & 0o777).toBe(0o750);
    writeFileSync(join(staged, 'metadata.json'), 'new');
    writeFileSync(join(staged, 'weights.bin'), 'new');
    await promoteDir(staged, out);
    expect(readdirSync(target).sort()).toEqual(['metadata.json', 'weights.bin']);
    expect(readFileSync(join(target, 'metadata.json'), 'utf8')).toBe('new');
    expect(readFileSync(join(target, 'weights.bin'), 'utf8')).toBe('new');
  });

  it('fsyncs the new model before it is moved into place, and the renames after, in both modes', async () => {
    const tmp = testTempDir('model-sync');
    const probe = await open(tmp, 'r');
    const proto = Object.getPrototypeOf(probe) as { sync: () => Promise<void> };
    await probe.close();
    const sync = vi.spyOn(proto, 'sync');
    try {
      for (const inPlace of [false, true]) {
        const target = join(tmp, inPlace ? 'volume' : 'model');
        mkdirSync(target);
        writeFileSync(join(target, 'metadata.json'), 'old');
        const out = { target, inPlace, mode: 0o755 };
        const staged = await stagingDir(out);
        for (const f of ['metadata.json', 'model.json', 'weights.bin']) writeFileSync(join(staged, f), 'new');
        sync.mockClear();
        await promoteDir(staged, out);
        // three files and the staged directory before the renames, the directory renamed into after them
        expect(sync).toHaveBeenCalledTimes(5);
        expect(readFileSync(join(target, 'metadata.json'), 'utf8')).toBe('new');
      }
    } finally {
      sync.mockRestore();
    }
  });

  it('refuses a fit that never reached a finite validation loss', () => {
    const epoch = { epoch: 1, epochs: 1, loss: Number.NaN, valLoss: Number.NaN, seconds: 0, best: false };
    expect(() =>
      assertTrained({
        history: [epoch],
        bestEpoch: 0,
        bestValLoss: Number.POSITIVE_INFINITY,
        positiveWeight: 1,
      }),
    ).toThrow(/ran 1 epochs without a finite validation loss .*refusing to save an untrained network/);
    expect(() =>
      assertTrained({ history: [], bestEpoch: 0, bestValLoss: Number.POSITIVE_INFINITY, positiveWeight: 1 }),
    ).toThrow(/untrained/);
    assertTrained({
      history: [{ ...epoch, loss: 0.5, valLoss: 0.4, best: true }],
      bestEpoch: 1,
      bestValLoss: 0.4,
      positiveWeight: 1,
    });
  });
});
