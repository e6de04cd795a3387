import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FEATURE_COUNT, featureSchemaInfo } from '../../src/features/schema.js';
import { readCompatibleMetadata } from '../../src/model/artifacts.js';
import { fitPlatt } from '../../src/model/calibration.js';
import { normalise } from '../../src/model/normalisation.js';
import { Predictor } from '../../src/model/predictor.js';
import { applyStackInPlace, featureIndices, fitStack } from '../../src/model/stack.js';
import { buildHistoryRows, type HistoryRows } from '../../training/dataset.js';
import { gather, planSplits, SPLIT_CODES, type SplitPlan } from '../../training/splits.js';
import { runTraining } from '../../training/train.js';
import { useSimHistories } from '../helpers/sim-history.js';

const HOUR_MS = 3_600_000;
const STEP_MS = 300_000;

/** `accounts` accounts with one row every 5 min over `hours` from `startTs`; row values tag the history. */
function history(file: string, accounts: number, hours: number, startTs: number, tag: number): HistoryRows {
  const steps = (hours * HOUR_MS) / STEP_MS;
  const rows = accounts * steps;
  const ts = new Float64Array(rows);
  const account = new Uint32Array(rows);
  for (let s = 0; s < steps; s++)
    for (let a = 0; a < accounts; a++) {
      ts[s * accounts + a] = startTs + s * STEP_MS;
      account[s * accounts + a] = a;
    }
  return {
    file,
    rows,
    cols: FEATURE_COUNT,
    x: new Float32Array(rows * FEATURE_COUNT).fill(tag),
    y: Float32Array.from({ length: rows }, (_, i) => (i % 50 === 0 ? 1 : 0)),
    ts,
    account,
    accounts: Array.from({ length: accounts }, (_, a) => `${file}-acct-${a}`),
    liquidations: new Map(),
    startTs,
    endTs: startTs + hours * HOUR_MS,
    events: rows,
    excludedInLiquidation: 0,
  };
}

const count = (plan: SplitPlan, k: number, split: keyof typeof SPLIT_CODES) =>
  (plan.assign[k] as Uint8Array).filter((c) => c === SPLIT_CODES[split]).length;

describe('the split plan with calibrate-on histories', () => {
  const DAY_MS = 24 * HOUR_MS;
  const trainA = history('train-a', 200, 24, 0, 1);
  const trainB = history('train-b', 200, 24, DAY_MS, 2);
  const calibrate = history('calibrate', 200, 24, 5 * DAY_MS, 3);
  const test = history('test', 200, 24, 9 * DAY_MS, 4);

  it('with held-out histories: calibrate-on rows only in early stopping and calibration, training histories only in training', () => {
    const plan = planSplits([trainA, trainB], [test], HOUR_MS, [calibrate]);
    // order: training, calibrate-on, validation histories
    for (const k of [0, 1]) expect(count(plan, k, 'train')).toBe((k === 0 ? trainA : trainB).rows);
    expect(count(plan, 2, 'train') + count(plan, 2, 'test') + count(plan, 2, 'unused')).toBe(0);
    expect(count(plan, 2, 'earlyStop')).toBeGreaterThan(calibrate.rows / 4);
    expect(count(plan, 2, 'calibration')).toBeGreaterThan(calibrate.rows / 4);
    expect(count(plan, 3, 'test')).toBe(test.rows);
    expect(plan.description).toContain('calibrate-on histories (calibrate)');

    // gathered: the network's split holds no calibrate-on row (x tagged 3), the stage's holds nothing else;
    // an account is in early stopping or calibration, never both
    const all = [trainA, trainB, calibrate, test];
    const train = gather(all, plan, 'train');
    expect(train.rows).toBe(trainA.rows + trainB.rows);
    expect(train.x.includes(3)).toBe(false);
    const stop = gather(all, plan, 'earlyStop');
    const calib = gather(all, plan, 'calibration');
    expect(stop.rows + calib.rows).toBe(calibrate.rows);
    for (const m of [stop, calib]) expect(m.x.every((v) => v === 3)).toBe(true);
    const stopAccounts = new Set(stop.account);
    expect(calib.account.some((a) => stopAccounts.has(a))).toBe(false);
    expect(calib.unseen.every((u) => u === 1)).toBe(true);
  });

  it('without them the held-out traders of the training histories serve early stopping and calibration, as before', () => {
    const plan = planSplits([trainA, trainB], [test], HOUR_MS);
    expect(planSplits([trainA, trainB], [test], HOUR_MS, [])).toEqual(plan);
    for (const k of [0, 1]) {
      const rows = (k === 0 ? trainA : trainB).rows;
      const held = count(plan, k, 'earlyStop') + count(plan, k, 'calibration');
      // 20% of accounts by hash: about 40 of 200
      expect(held / rows).toBeGreaterThan(0.1);
      expect(held / rows).toBeLessThan(0.3);
      expect(count(plan, k, 'train')).toBe(rows - held);
    }
    expect(plan.description).not.toContain('calibrate-on');
  });

  it('without held-out histories: training runs to 80% of the time, purged a horizon before the test period', () => {
    const plan = planSplits([trainA], [], HOUR_MS, [calibrate]);
    const a = plan.assign[0] as Uint8Array;
    const testStart = 0.8 * 24 * HOUR_MS;
    let lastTrainTs = Number.NEGATIVE_INFINITY;
    let stageRows = 0;
    let notTestAfterTestStart = 0;
    for (let i = 0; i < trainA.rows; i++) {
      const t = trainA.ts[i] as number;
      if (a[i] === SPLIT_CODES.earlyStop || a[i] === SPLIT_CODES.calibration) stageRows++;
      if (a[i] === SPLIT_CODES.train) lastTrainTs = Math.max(lastTrainTs, t);
      if (t >= testStart && a[i] !== SPLIT_CODES.test) notTestAfterTestStart++;
    }
    expect(stageRows).toBe(0);
    expect(notTestAfterTestStart).toBe(0);
    expect(lastTrainTs + HOUR_MS).toBeLessThanOrEqual(testStart);
    expect(lastTrainTs).toBeGreaterThan(0.6 * 24 * HOUR_MS);
    expect(count(plan, 1, 'earlyStop') + count(plan, 1, 'calibration')).toBe(calibrate.rows);
  });
});

describe('training with --calibrate-on', () => {
  const { dir, files } = useSimHistories('calibrate-on');

  it('fits the stage and the calibration on the calibrate-on rows, none of which are trained on', async () => {
    const trainFile = files['may-2021'] as string;
    const calibrateFile = files['flash-crash'] as string;
    const testFile = files['black-thursday-2020'] as string;
    const out = join(dir, 'model');
    await runTraining({
      events: [trainFile],
      calibrateOn: [calibrateFile],
      validate: [testFile],
      out,
      epochs: 2,
      seed: 5,
      // two stacked columns: the stage's multi-feature path is refitted below
      stackFeatures: ['liq_dist_sigma', 'vol_fast_ann'],
    });
    const meta = await readCompatibleMetadata(out);
    const opts = { everyMs: meta.everyMs, horizonMs: meta.horizonMs };
    const trainH = await buildHistoryRows(trainFile, opts);
    const calibrateH = await buildHistoryRows(calibrateFile, opts);
    const testH = await buildHistoryRows(testFile, opts);
    // every training-history row trained on (before sampling), every calibrate-on row held for the stage
    expect(meta.data.rows.trainBeforeSampling).toBe(trainH.rows);
    expect((meta.data.rows.earlyStop as number) + (meta.data.rows.calibration as number)).toBe(
      calibrateH.rows,
    );
    expect(meta.data.files).toEqual([trainFile, calibrateFile, testFile]);
    expect(meta.training.calibrateOn).toEqual([calibrateFile]);
    expect(meta.metrics.split).toContain(`calibrate-on histories (${calibrateFile})`);

    // refit the stage and Platt from the saved network on the calibrate-on history's calibration rows
    const plan = planSplits([trainH], [testH], meta.horizonMs, [calibrateH]);
    const calib = gather([trainH, calibrateH, testH], plan, 'calibration');
    expect(calib.rows).toBe(meta.data.rows.calibration);
    const predictor = await Predictor.load(out, { fast: false });
    const raw = predictor.predictNormalised(normalise(meta.normalisation, calib.x, calib.rows), calib.rows);
    predictor.dispose();
    const names = featureSchemaInfo().names;
    const stack = fitStack(raw, calib.x, calib.rows, names, calib.y, ['liq_dist_sigma', 'vol_fast_ann']);
    expect(meta.stack?.features).toEqual(['liq_dist_sigma', 'vol_fast_ann']);
    expect(meta.stack?.wLogit).toBeCloseTo(stack.wLogit, 6);
    expect(meta.stack?.wFeatures).toHaveLength(2);
    expect(meta.stack?.wFeatures[0]).toBeCloseTo(stack.wFeatures[0] as number, 6);
    expect(meta.stack?.wFeatures[1]).toBeCloseTo(stack.wFeatures[1] as number, 6);
    expect(meta.stack?.bias).toBeCloseTo(stack.bias, 6);
    applyStackInPlace(stack, raw, calib.x, calib.cols, featureIndices(names, stack.features));
    const platt = fitPlatt(raw, calib.y);
    expect(meta.calibration.method).toBe('platt');
    if (meta.calibration.method === 'platt' && platt.method === 'platt') {
      expect(meta.calibration.a).toBeCloseTo(platt.a, 6);
      expect(meta.calibration.b).toBeCloseTo(platt.b, 6);
    }
  }, 300_000);

  it('refuses a history given both to calibrate on and to train on, saying why', async () => {
    await expect(
      runTraining({
        events: [files['may-2021'] as string],
        calibrateOn: [files['may-2021'] as string],
        validate: [files['black-thursday-2020'] as string],
        out: join(dir, 'overlap'),
        epochs: 1,
      }),
    ).rejects.toThrow(/both as a calibrate-on history and as a training or validation history/);
  });

  it('refuses a stack feature the schema does not have, naming it, before reading any history', async () => {
    const out = join(dir, 'bad-stack');
    await expect(
      runTraining({
        events: [join(dir, 'no-such-file.jsonl')],
        validate: [files['black-thursday-2020'] as string],
        out,
        stackFeatures: ['liq_dist_sigma', 'liq_distance'],
      }),
    ).rejects.toThrow(/stack feature "liq_distance" is not a feature of the schema/);
    expect(existsSync(out)).toBe(false);
  });
});
