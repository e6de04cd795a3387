/**
 * `stageCrossFit`: the second stage and the calibration are fitted on out-of-day scores, each training
 * history scored by a network trained the same way on the others; the shipped network is the one the
 * default recipe trains.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FEATURE_NAMES } from '../../src/features/schema.js';
import { readCompatibleMetadata } from '../../src/model/artifacts.js';
import { normalise } from '../../src/model/normalisation.js';
import { Predictor } from '../../src/model/predictor.js';
import { fitStack } from '../../src/model/stack.js';
import { buildHistoryRows } from '../../training/dataset.js';
import { gather, planSplits } from '../../training/splits.js';
import { runTraining, TrainingDataError, type TrainOptions } from '../../training/train.js';
import { useSimHistories } from '../helpers/sim-history.js';

const { dir, files } = useSimHistories('stage-cross-fit');
const HORIZON_MS = 3_600_000;
const base = () => ({
  events: [files['may-2021'] as string, files['flash-crash'] as string],
  validate: [files['black-thursday-2020'] as string],
  epochs: 2,
  seed: 5,
});

/** The raw network outputs of the model in `modelDir` on every row of `file`. */
async function rawScores(modelDir: string, file: string) {
  const rows = await buildHistoryRows(file, { everyMs: 300_000, horizonMs: HORIZON_MS });
  const all = gather([rows], planSplits([], [rows], HORIZON_MS), 'test');
  const p = await Predictor.load(modelDir);
  try {
    return { all, raw: p.predictNormalised(normalise(p.meta.normalisation, all.x, all.rows), all.rows) };
  } finally {
    p.dispose();
  }
}

describe('training with stageCrossFit', () => {
  it('refuses settings it does not combine with, before reading any history', async () => {
    const missing = join(dir, 'no-such-history.jsonl.gz');
    const cases: [Partial<TrainOptions>, RegExp][] = [
      [{ calibrateOn: [files['flash-crash'] as string] }, /not both/],
      [{ calibrationWeighting: 'histories' }, /--calibration-weighting histories is not supported/],
      [{ events: [missing] }, /at least two training histories .* got 1/],
    ];
    for (const [extra, message] of cases) {
      const run = runTraining({
        ...base(),
        events: [missing, missing.replace('no-such', 'nor-this')],
        ...extra,
        out: join(dir, 'refused'),
        stageCrossFit: true,
      });
      await expect(run).rejects.toThrow(TrainingDataError);
      await expect(run).rejects.toThrow(message);
    }
  });

  it('fits the stage on each history as scored by a network trained without it; the network is unchanged', async () => {
    const crossOut = join(dir, 'cross');
    const plainOut = join(dir, 'plain');
    const folds: string[] = [];
    await runTraining({
      ...base(),
      out: crossOut,
      stageCrossFit: true,
      onProgress: (p) => {
        if (p.phase === 'fit' && p.model === 'fold' && !folds.includes(p.heldOut)) folds.push(p.heldOut);
      },
    });
    await runTraining({ ...base(), out: plainOut });
    const cross = await readCompatibleMetadata(crossOut);
    const plain = await readCompatibleMetadata(plainOut);

    // the shipped network is the default recipe's, byte for byte; only the stage and calibration differ
    expect(
      readFileSync(join(crossOut, 'weights.bin')).equals(readFileSync(join(plainOut, 'weights.bin'))),
    ).toBe(true);
    expect(cross.normalisation).toEqual(plain.normalisation);
    expect(cross.stack).toBeDefined();
    expect(cross.stack).not.toEqual(plain.stack);
    expect(folds).toEqual(base().events);

    // one fold per training history, each scoring all of its rows
    const record = cross.training.stageCrossFit as {
      rows: number;
      positives: number;
      folds: { heldOut: string; rows: number; positives: number }[];
    };
    expect(record.folds.map((f) => f.heldOut)).toEqual(base().events);
    const [may, flash] = base().events as [string, string];

    // each fold is the network `--events <the other> --validate <this one>` trains: its scores of the held-out
    // history, pooled, give the recorded stage
    const foldMay = join(dir, 'fold-may');
    const foldFlash = join(dir, 'fold-flash');
    await runTraining({ ...base(), events: [flash], validate: [may], out: foldMay });
    await runTraining({ ...base(), events: [may], validate: [flash], out: foldFlash });
    const a = await rawScores(foldMay, may);
    const b = await rawScores(foldFlash, flash);
    expect(record.folds.map((f) => f.rows)).toEqual([a.all.rows, b.all.rows]);
    expect(record.rows).toBe(a.all.rows + b.all.rows);
    const cols = FEATURE_NAMES.length;
    const rows = a.all.rows + b.all.rows;
    const x = new Float32Array(rows * cols);
    x.set(a.all.x.subarray(0, a.all.rows * cols));
    x.set(b.all.x.subarray(0, b.all.rows * cols), a.all.rows * cols);
    const raw = new Float32Array(rows);
    raw.set(a.raw);
    raw.set(b.raw, a.all.rows);
    const y = new Float32Array(rows);
    y.set(a.all.y);
    y.set(b.all.y, a.all.rows);
    let positives = 0;
    for (const v of y) positives += v;
    expect(record.positives).toBe(positives);
    const stage = fitStack(raw, x, rows, FEATURE_NAMES, y, ['liq_dist_sigma']);
    expect(cross.stack?.wLogit).toBeCloseTo(stage.wLogit, 9);
    expect(cross.stack?.bias).toBeCloseTo(stage.bias, 9);
    expect(cross.stack?.wFeatures[0]).toBeCloseTo(stage.wFeatures[0] as number, 9);
  }, 300_000);
});
