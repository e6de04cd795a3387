/**
 * The training job: histories -> labelled rows -> splits -> normalisation -> MLP (early stopping) ->
 * calibration on a held-out split -> baselines -> held-out metrics -> model directory with metadata and
 * report. Used by `preempt train` and by the BullMQ training worker. The directory is built beside `out` and
 * moved into place only when complete (see model-dir.ts): a failed run leaves `out` as it was.
 */

import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { F, FEATURE_NAMES, featureSchemaInfo } from '../src/features/schema.js';
import { type ModelMetadata, saveModelDir, writeMetadata } from '../src/model/artifacts.js';
import {
  applyCalibrationInPlace,
  type Calibration,
  fitIsotonic,
  fitPlatt,
} from '../src/model/calibration.js';
import {
  type Architecture,
  ArchitectureSchema,
  createModel,
  DEFAULT_ARCHITECTURE,
} from '../src/model/create-model.js';
import { fitNormalisation, normalise } from '../src/model/normalisation.js';
import { Predictor } from '../src/model/predictor.js';
import { applyStackInPlace, featureIndices, fitStack } from '../src/model/stack.js';
import { initTf } from '../src/tf/runtime.js';
import { fitLogistic1d, scoreLogistic1d } from './baselines.js';
import { buildHistoryRows, fingerprintFiles, type HistoryRows } from './dataset.js';
import { evaluate, type Metrics, permutationImportance } from './evaluate.js';
import { type EpochInfo, type FitResult, fitModel, predictRows } from './fit.js';
import type { LiquidationTimes } from './labels.js';
import { checkModelOut, discardStaging, promoteDir, stagingDir } from './model-dir.js';
import { writeReport } from './report.js';
import {
  gather,
  gatherColumns,
  gatherSampled,
  historyWeights,
  planSplits,
  type SplitColumns,
  type SplitMatrix,
  type SplitPlan,
  splitColumn,
} from './splits.js';

export const DEFAULT_NEGATIVE_SAMPLE = 0.3;
/** the most epochs a run may ask for (the training job's schema allows as many) */
export const MAX_EPOCHS = 1000;
/** the raw columns the second stage combines with the network's logit */
export const STACK_FEATURES = ['liq_dist_sigma'] as const;

export interface TrainOptions {
  /** training histories (.jsonl / .jsonl.gz) */
  events: string[];
  /** held-out histories for the test metrics (e.g. another crash day); default: the last 20% of time */
  validate?: string[];
  /**
   * histories used only for early stopping, the second stage and calibration (split by account, half
   * each), never trained on: fits them out of the training days' regime. Default: held-out traders (or,
   * without `validate`, a time window) of the training histories, which are then trained on instead.
   */
  calibrateOn?: string[];
  /** the model directory; replaced whole, and only by a run that completes */
  out: string;
  name?: string;
  horizonMs?: number;
  everyMs?: number;
  /**
   * x (equity / MM): train, calibrate and test on the rows below this ratio only (`BuildOptions.maxMarginRatio`):
   * a score for the accounts a margin-ratio gate lets the reduce tier act on; absent: every row
   */
  maxMarginRatio?: number;
  /** maximum epochs, 1..MAX_EPOCHS (early stopping may end sooner) */
  epochs?: number;
  seed?: number;
  batchSize?: number;
  hidden?: number[];
  calibration?: 'platt' | 'isotonic' | 'auto';
  /**
   * how the rows of the second stage, the calibration and the margin-rule baseline are weighted: `rows`
   * (default) every row alike, so a long history weighs by its length; `histories` every history alike
   * (see `historyWeights`). The baselines get the same weighting as the model.
   */
  calibrationWeighting?: CalibrationWeighting;
  /**
   * share of the training split's non-default rows kept (seeded; every default is kept), default 0.3.
   * Defaults are ~1% of rows: dropping most negatives cuts the epoch time ~3x and, measured on the shipped
   * data, ranks better; the calibration split is never subsampled, so probabilities keep their meaning.
   */
  negativeSample?: number;
  /**
   * decay of a per-batch exponential moving average of the weights (0: off, the default); validation, early
   * stopping and the saved network then use the averaged weights. Applied to the logistic baseline too.
   */
  weightEma?: number;
  /** the two-stage score (network + margin-rule distance, see src/model/stack.ts); default true */
  stack?: boolean;
  /** the raw feature columns the second stage adds to the network's logit; default `STACK_FEATURES` */
  stackFeatures?: string[];
  /**
   * fit the second stage and the calibration on out-of-day scores (default false): for each training
   * history, a network trained the same way on the other training histories scores that history's rows, and
   * the stage and calibration are fitted on all of those rows together; the shipped network is then trained
   * on every training history as usual. The stage so learns what the network's logit is worth on a day it
   * never saw, which is what serving meets, where the default fits it on held-out traders of the training
   * days themselves. Costs one more network per training history (at least two needed).
   */
  stageCrossFit?: boolean;
  onProgress?: (p: TrainProgress) => void;
}

export type CalibrationWeighting = 'rows' | 'histories';

export type TrainProgress =
  | { phase: 'read'; file: string; events: number }
  | { phase: 'fit'; model: 'mlp' | 'logistic'; epoch: EpochInfo }
  /** a cross-fit network (`stageCrossFit`): `fold` of `folds`, trained without `heldOut` */
  | { phase: 'fit'; model: 'fold'; fold: number; folds: number; heldOut: string; epoch: EpochInfo }
  | { phase: 'evaluate' | 'report'; detail: string };

/** What a fit's progress is about: `mlp`, `logistic`, or `fold 3/8` (a cross-fit network). */
export function fitLabel(p: Extract<TrainProgress, { phase: 'fit' }>): string {
  return p.model === 'fold' ? `fold ${p.fold}/${p.folds}` : p.model;
}

export interface TrainResult {
  dir: string;
  metadata: ModelMetadata;
}

export class TrainingDataError extends Error {
  readonly code = 'TRAINING_DATA';
}

function pkgVersion(name: string): string {
  try {
    const url = new URL(`../node_modules/${name}/package.json`, import.meta.url);
    return (JSON.parse(readFileSync(url, 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

/**
 * Refuse a network training never improved: no epoch run, or none with a finite validation loss (the
 * network then holds its initial or last, diverged, weights; nothing early stopping chose).
 */
export function assertTrained(fit: FitResult, what = 'the network'): void {
  if (fit.history.length === 0 || fit.bestEpoch < 1 || !Number.isFinite(fit.bestValLoss))
    throw new TrainingDataError(
      `training ${what} ran ${fit.history.length} epochs without a finite validation loss (best epoch ${fit.bestEpoch}): refusing to save an untrained network`,
    );
}

function countPositives(y: Float32Array): number {
  let p = 0;
  for (const v of y) p += v;
  return p;
}

function fitCalibration(
  raw: Float32Array,
  y: Float32Array,
  method: TrainOptions['calibration'],
  twoStage: boolean,
  weights: Float64Array | undefined,
): Calibration {
  const positives = countPositives(y);
  // after the second stage (itself a logistic fit) `auto` is Platt: isotonic steps added calibration error
  // on the held-out crash day (ECE 0.0106 vs 0.0100 with Platt, measured on the shipped data)
  const useIsotonic = method === 'isotonic' || (method === 'auto' && !twoStage && positives >= 1000);
  return useIsotonic ? fitIsotonic(raw, y, weights) : fitPlatt(raw, y, 100, weights);
}

export function combinedLiquidations(histories: HistoryRows[]): LiquidationTimes {
  const out: LiquidationTimes = new Map();
  let offset = 0;
  for (const h of histories) {
    for (const [a, times] of h.liquidations) out.set(offset + a, times);
    offset += h.accounts.length;
  }
  return out;
}

interface MlpSettings {
  architecture: Architecture;
  epochs: number;
  seed: number;
  batchSize: number;
  weightEma: number;
}

/**
 * One network of the recipe: normalisation from the (sampled) training split, a seeded MLP, early stopping
 * on `stop`; refused if it never trained (`assertTrained`).
 */
async function fitMlp(
  train: SplitMatrix,
  stop: SplitMatrix,
  settings: MlpSettings,
  onEpoch: (epoch: EpochInfo) => void,
  what?: string,
) {
  const norm = fitNormalisation(train.x, train.rows, train.cols);
  const z = (m: Pick<SplitMatrix, 'x' | 'y' | 'rows' | 'cols'>) => ({
    x: normalise(norm, m.x, m.rows),
    y: m.y,
    rows: m.rows,
    cols: m.cols,
  });
  const trainZ = z(train);
  const stopZ = z(stop);
  const model = await createModel(featureSchemaInfo(), settings.architecture, settings.seed);
  try {
    const fit = await fitModel(model, trainZ, stopZ, {
      epochs: settings.epochs,
      seed: settings.seed,
      batchSize: settings.batchSize,
      weightEma: settings.weightEma,
      onEpoch,
    });
    assertTrained(fit, what);
    return { model, norm, z, trainZ, stopZ, fit };
  } catch (e) {
    model.dispose();
    throw e;
  }
}

/** One cross-fit network's record in the metadata (`training.stageCrossFit.folds`). */
export interface CrossFitFold {
  /** the training history it never saw, whose rows it scored */
  heldOut: string;
  rows: number;
  positives: number;
  epochsRun: number;
  bestEpoch: number;
}

/**
 * Out-of-day network scores of every training history (`TrainOptions.stageCrossFit`): the network trained,
 * as `preempt train --events <the others> --validate <this one>` would train it, on the other histories,
 * scores all of this history's rows. Returns the stage's rows, every row of every training history in order
 * (`gather(trainH, planSplits([], trainH, horizonMs), 'test')`, whose every row is a test row), as their
 * labels and the feature columns `columns` only, and the raw network outputs for them.
 */
async function crossFitScores(
  tf: Awaited<ReturnType<typeof initTf>>['tf'],
  trainH: HistoryRows[],
  horizonMs: number,
  negativeSample: number,
  settings: MlpSettings,
  columns: readonly number[],
  progress: (p: TrainProgress) => void,
): Promise<{ rows: SplitColumns; raw: Float32Array; folds: CrossFitFold[] }> {
  const rows = gatherColumns(trainH, planSplits([], trainH, horizonMs), 'test', columns);
  const raw = new Float32Array(rows.rows);
  const folds: CrossFitFold[] = [];
  let offset = 0;
  for (let k = 0; k < trainH.length; k++) {
    const held = trainH[k] as HistoryRows;
    const others = trainH.filter((_, j) => j !== k);
    const all = [...others, held];
    const plan = planSplits(others, [held], horizonMs);
    const train = gatherSampled(all, plan, 'train', negativeSample, settings.seed);
    const earlyStop = gather(all, plan, 'earlyStop');
    const stop = earlyStop.rows > 0 ? earlyStop : gather(all, plan, 'calibration');
    const { model, z, fit } = await fitMlp(
      train,
      stop,
      settings,
      (epoch) =>
        progress({
          phase: 'fit',
          model: 'fold',
          fold: k + 1,
          folds: trainH.length,
          heldOut: held.file,
          epoch,
        }),
      `the cross-fit network without ${held.file}`,
    );
    try {
      // the held-out history's rows are its slice of the stage's rows
      raw.set(predictRows(tf, model, z(held)), offset);
      offset += held.rows;
      folds.push({
        heldOut: held.file,
        rows: held.rows,
        positives: countPositives(held.y),
        epochsRun: fit.history.length,
        bestEpoch: fit.bestEpoch,
      });
    } finally {
      model.dispose();
    }
  }
  return { rows, raw, folds };
}

/**
 * The shipped network and baseline (b), a logistic regression on all features trained by the same loop on the
 * same rows (the sampled training split, normalised as for the network), with early stopping on `stop`, and
 * the baseline's calibration on `calib`; with `scoreCalib`, also the network's raw outputs on `calib` (the
 * in-regime stage's rows), from the same normalised copy. Of the training rows only their count and defaults
 * are returned: the sampled split and its normalised copies are garbage once this returns, before any cross-fit
 * network trains.
 */
async function fitNetworkAndLogistic(
  tf: Awaited<ReturnType<typeof initTf>>['tf'],
  all: HistoryRows[],
  plan: SplitPlan,
  stop: SplitMatrix,
  calib: SplitMatrix,
  negativeSample: number,
  settings: MlpSettings,
  calibrationMethod: TrainOptions['calibration'],
  calWeights: Float64Array | undefined,
  scoreCalib: boolean,
  progress: (p: TrainProgress) => void,
) {
  const train = gatherSampled(all, plan, 'train', negativeSample, settings.seed);
  // normalisation from the training split only
  const { model, norm, z, trainZ, stopZ, fit } = await fitMlp(train, stop, settings, (epoch) =>
    progress({ phase: 'fit', model: 'mlp', epoch }),
  );
  try {
    const logistic = await createModel(
      featureSchemaInfo(),
      { hidden: [], dropout: 0, l2: settings.architecture.l2 },
      settings.seed,
    );
    try {
      await fitModel(logistic, trainZ, stopZ, {
        epochs: settings.epochs,
        seed: settings.seed,
        batchSize: settings.batchSize,
        weightEma: settings.weightEma,
        onEpoch: (epoch) => progress({ phase: 'fit', model: 'logistic', epoch }),
      });
      const calZ = z(calib);
      const logisticCal = fitCalibration(
        predictRows(tf, logistic, calZ),
        calZ.y,
        calibrationMethod,
        false,
        calWeights,
      );
      return {
        model,
        norm,
        z,
        fit,
        logistic,
        logisticCal,
        calRaw: scoreCalib ? predictRows(tf, model, calZ) : undefined,
        trainRows: train.rows,
        trainPositives: countPositives(train.y),
      };
    } catch (e) {
      logistic.dispose();
      throw e;
    }
  } catch (e) {
    model.dispose();
    throw e;
  }
}

export async function runTraining(opts: TrainOptions): Promise<TrainResult> {
  const horizonMs = opts.horizonMs ?? 3_600_000;
  const everyMs = opts.everyMs ?? 300_000;
  const epochs = opts.epochs ?? 30;
  const seed = opts.seed ?? 1;
  const progress = opts.onProgress ?? (() => {});
  const { tf, backend } = await initTf();

  const read = async (files: string[]) => {
    const out: HistoryRows[] = [];
    for (const file of files)
      out.push(
        await buildHistoryRows(file, {
          everyMs,
          horizonMs,
          ...(opts.maxMarginRatio !== undefined ? { maxMarginRatio: opts.maxMarginRatio } : {}),
          onProgress: (events) => progress({ phase: 'read', file, events }),
        }),
      );
    return out;
  };
  // refused before any history is read
  if (opts.maxMarginRatio !== undefined && !(Number.isFinite(opts.maxMarginRatio) && opts.maxMarginRatio > 1))
    throw new TrainingDataError(
      `the largest margin ratio must be a number above 1, got ${opts.maxMarginRatio}`,
    );
  if (!(Number.isInteger(epochs) && epochs >= 1 && epochs <= MAX_EPOCHS))
    throw new TrainingDataError(`epochs must be an integer from 1 to ${MAX_EPOCHS}, got ${epochs}`);
  const arch = ArchitectureSchema.safeParse({
    ...DEFAULT_ARCHITECTURE,
    ...(opts.hidden ? { hidden: opts.hidden } : {}),
  });
  if (!arch.success)
    throw new TrainingDataError(
      `hidden layer sizes must be positive integers, got [${(opts.hidden ?? []).join(', ')}]`,
    );
  const architecture = arch.data;
  const modelOut = await checkModelOut(opts.out);
  const stackFeatures = opts.stackFeatures ?? [...STACK_FEATURES];
  const names = featureSchemaInfo().names;
  for (const f of stackFeatures)
    if (!names.includes(f))
      throw new TrainingDataError(
        `stack feature "${f}" is not a feature of the schema (${names.join(', ')})`,
      );
  const calibrateOn = opts.calibrateOn ?? [];
  const crossFit = opts.stageCrossFit ?? false;
  if (crossFit && calibrateOn.length > 0)
    throw new TrainingDataError(
      'the stage is fitted either on cross-fit scores (--stage-cross-fit) or on calibrate-on histories, not both',
    );
  if (crossFit && opts.calibrationWeighting === 'histories')
    throw new TrainingDataError(
      '--stage-cross-fit weighs every out-of-day row alike: --calibration-weighting histories is not supported with it',
    );
  if (crossFit && opts.events.length < 2)
    throw new TrainingDataError(
      `--stage-cross-fit needs at least two training histories (each is scored by a network trained on the others), got ${opts.events.length}`,
    );
  const roles = [...opts.events, ...(opts.validate ?? [])].map((f) => resolve(f));
  for (const f of calibrateOn)
    if (roles.includes(resolve(f)))
      throw new TrainingDataError(
        `${f} is given both as a calibrate-on history and as a training or validation history: calibrate-on rows must never be trained or tested on`,
      );
  const trainH = await read(opts.events);
  const calibrateH = await read(calibrateOn);
  const validateH = await read(opts.validate ?? []);
  // the order planSplits assigns in: training, calibrate-on, validation histories
  const all = [...trainH, ...calibrateH, ...validateH];
  const plan = planSplits(trainH, validateH, horizonMs, calibrateH);
  // the unsampled training split only as far as it is needed: its size, labels and margin-rule column (the
  // network trains on the sampled split, gathered by fitNetworkAndLogistic)
  const trainFull = gatherColumns(all, plan, 'train', [F.liq_dist_sigma]);
  const earlyStop = gather(all, plan, 'earlyStop');
  const calib = gather(all, plan, 'calibration');
  const test = gather(all, plan, 'test');
  for (const [name, m] of [
    ['train', trainFull],
    ['calibration', calib],
    ['test', test],
  ] as const) {
    const p = countPositives(m.y);
    if (m.rows === 0 || p === 0)
      throw new TrainingDataError(
        `the ${name} split has ${m.rows} rows and ${p} defaults: the histories need liquidations in every period (longer or more volatile histories, or more accounts)`,
      );
  }

  const negativeSample = opts.negativeSample ?? DEFAULT_NEGATIVE_SAMPLE;
  const weighting = opts.calibrationWeighting ?? 'rows';
  const calWeights = weighting === 'histories' ? historyWeights(all, plan, 'calibration') : undefined;

  // baseline (a): the margin rule alone, a logistic fit on the distance to liquidation in sigmas, fitted on
  // every training row: a 1-feature logistic on subsampled negatives would be miscalibrated
  const marginRule = fitLogistic1d(
    trainFull.x,
    trainFull.y,
    'liq_dist_sigma',
    weighting === 'histories' ? historyWeights(all, plan, 'train') : undefined,
  );

  const settings: MlpSettings = {
    architecture,
    epochs,
    seed,
    batchSize: opts.batchSize ?? 1024,
    weightEma: opts.weightEma ?? 0,
  };
  // the network, and baseline (b): logistic regression on all features, same loop, same calibration split.
  // Both are fitted before the cross-fit networks, so that their training matrices are not held during the folds
  const { model, norm, z, fit, logistic, logisticCal, calRaw, trainRows, trainPositives } =
    await fitNetworkAndLogistic(
      tf,
      all,
      plan,
      earlyStop.rows > 0 ? earlyStop : calib,
      calib,
      negativeSample,
      settings,
      opts.calibration ?? 'auto',
      calWeights,
      !crossFit,
      progress,
    );
  // second stage and calibration: on the calibration split (traders never trained on; with calibrate-on
  // histories, other days too), or with stageCrossFit on every training row as scored by a network that never
  // saw its day. The rows they were fitted on are `stageRows`, holding the feature columns `stageNames` (with
  // stageCrossFit the stacked ones only)
  let stageRows: SplitColumns = calib;
  let stageNames: readonly string[] = names;
  let stageRaw: Float32Array;
  let crossFitFolds: CrossFitFold[] | undefined;
  if (crossFit) {
    try {
      const scored = await crossFitScores(
        tf,
        trainH,
        horizonMs,
        negativeSample,
        settings,
        featureIndices(names, stackFeatures),
        progress,
      );
      stageRows = scored.rows;
      stageNames = stackFeatures;
      stageRaw = scored.raw;
      crossFitFolds = scored.folds;
    } catch (e) {
      model.dispose();
      logistic.dispose();
      throw e;
    }
  } else stageRaw = calRaw as Float32Array;
  const stack =
    (opts.stack ?? true)
      ? fitStack(
          stageRaw,
          stageRows.x,
          stageRows.rows,
          stageNames,
          stageRows.y,
          stackFeatures,
          undefined,
          undefined,
          calWeights,
        )
      : undefined;
  if (stack)
    applyStackInPlace(
      stack,
      stageRaw,
      stageRows.x,
      stageRows.cols,
      featureIndices(stageNames, stack.features),
    );
  const calibration = fitCalibration(
    stageRaw,
    stageRows.y,
    opts.calibration ?? 'auto',
    stack !== undefined,
    calWeights,
  );

  const logisticWeights = logistic.getWeights().map((w) => Array.from(w.dataSync()));

  progress({ phase: 'evaluate', detail: `${test.rows} test rows` });
  const meta: ModelMetadata = {
    name: opts.name ?? opts.out.split('/').filter(Boolean).pop() ?? 'model',
    createdAt: new Date().toISOString(),
    featureSchema: (() => {
      const s = featureSchemaInfo();
      return {
        version: s.version,
        hash: s.hash,
        names: [...s.names],
        units: [...s.units],
        neutral: [...s.neutral],
      };
    })(),
    normalisation: norm,
    ...(stack ? { stack } : {}),
    calibration,
    architecture,
    horizonMs,
    everyMs,
    ...(opts.maxMarginRatio !== undefined ? { rows: { maxMarginRatio: opts.maxMarginRatio } } : {}),
    seed,
    metrics: { model: {}, baselines: {}, split: plan.description },
    baselines: {
      'margin-rule': marginRule,
      logistic: { weights: logisticWeights, calibration: logisticCal },
    },
    data: {
      fingerprint: await fingerprintFiles([...opts.events, ...calibrateOn, ...(opts.validate ?? [])]),
      files: [...opts.events, ...calibrateOn, ...(opts.validate ?? [])],
      rows: {
        train: trainRows,
        trainBeforeSampling: trainFull.rows,
        earlyStop: earlyStop.rows,
        calibration: calib.rows,
        test: test.rows,
      },
    },
    training: {
      epochsRun: fit.history.length,
      bestEpoch: fit.bestEpoch,
      bestValLoss: fit.bestValLoss,
      positiveWeight: fit.positiveWeight,
      negativeSample,
      calibrationWeighting: weighting,
      ...(opts.weightEma ? { weightEma: opts.weightEma } : {}),
      ...(calibrateOn.length > 0 ? { calibrateOn: [...calibrateOn] } : {}),
      ...(crossFitFolds
        ? {
            stageCrossFit: {
              rows: stageRows.rows,
              positives: countPositives(stageRows.y),
              folds: crossFitFolds,
            },
          }
        : {}),
      history: fit.history.map((h) => ({
        epoch: h.epoch,
        loss: h.loss,
        valLoss: h.valLoss,
        seconds: h.seconds,
      })),
      positives: {
        train: trainPositives,
        calibration: countPositives(calib.y),
        test: countPositives(test.y),
      },
    },
    versions: {
      preempt: pkgVersion('..'),
      tfjs: pkgVersion('@tensorflow/tfjs'),
      backend,
      node: process.version,
    },
  };
  // everything is written to a staging directory beside `out`, moved into place once complete
  const staged = await stagingDir(modelOut);
  try {
    // the digests of the network as saved: the one evaluated below (a load checks them) and recorded at the end
    const saved = await saveModelDir(staged, model, meta);

    // evaluate through the serving path itself (the metadata has no metrics yet: an unfinished run's)
    const predictor = await Predictor.load(staged, { allowUnfinished: true });
    try {
      const liquidations = combinedLiquidations(all);
      const pdModel = predictor.score(test.x, test.rows);
      const pdMargin = scoreLogistic1d(marginRule, splitColumn(test, F.liq_dist_sigma));
      const pdLogistic = applyCalibrationInPlace(logisticCal, predictRows(tf, logistic, z(test)));
      const metrics: Record<string, Metrics> = {
        model: evaluate(pdModel, test, liquidations, everyMs),
        'margin-rule': evaluate(pdMargin, test, liquidations, everyMs),
        logistic: evaluate(pdLogistic, test, liquidations, everyMs),
      };
      meta.metrics.model = metrics.model as Metrics;
      meta.metrics.baselines = {
        'margin-rule': metrics['margin-rule'] as Metrics,
        logistic: metrics.logistic as Metrics,
      };
      const importance = await permutationImportance(
        async (x, rows) => predictor.score(x, rows),
        test,
        FEATURE_NAMES,
        seed,
      );
      meta.training.importance = importance.slice(0, 15);
      // the network is on disk already: only the metadata gains its metrics, refused if the network files are
      // no longer the ones saved above and evaluated
      meta.digests = (await writeMetadata(staged, meta, { expectDigests: saved.digests })).digests;
      progress({ phase: 'report', detail: opts.out });
      await writeReport(staged, meta, {
        test,
        pd: { model: pdModel, 'margin-rule': pdMargin, logistic: pdLogistic },
        importance,
        history: fit.history,
      });
    } finally {
      predictor.dispose();
    }
    await promoteDir(staged, modelOut);
  } catch (e) {
    await discardStaging(staged);
    throw e;
  } finally {
    model.dispose();
    logistic.dispose();
  }
  return { dir: opts.out, metadata: meta };
}
