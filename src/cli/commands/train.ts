/**
 * `preempt train`: the training job from the command line, with a progress bar (epoch, loss, ETA) on stderr.
 */
import { SingleBar } from 'cli-progress';
import { type Command, InvalidArgumentError } from 'commander';
import { metricsTable } from '../../../training/report.js';
import {
  type CalibrationWeighting,
  DEFAULT_NEGATIVE_SAMPLE,
  fitLabel,
  MAX_EPOCHS,
  runTraining,
  STACK_FEATURES,
} from '../../../training/train.js';
import { FEATURE_NAMES } from '../../features/schema.js';
import { parseDurationMs, parseIntArg } from '../duration.js';

interface TrainCliOptions {
  events: string[];
  validate?: string[];
  calibrateOn?: string[];
  out: string;
  horizon: number;
  every: number;
  maxMarginRatio?: number;
  epochs: number;
  seed: number;
  hidden?: number[];
  calibration: 'platt' | 'isotonic' | 'auto';
  negativeSample: number;
  weightEma: number;
  stack: boolean;
  stackFeatures: string[];
  calibrationWeighting: CalibrationWeighting;
  stageCrossFit: boolean;
  progress: boolean;
}

export function register(program: Command): void {
  program
    .command('train')
    .description(
      'train a default model on canonical histories and write models/NAME (model, metadata, report)',
    )
    .requiredOption('--events <files...>', 'training histories (.jsonl / .jsonl.gz)')
    .option('--validate <files...>', 'held-out histories for the test metrics (e.g. another crash day)')
    .option(
      '--calibrate-on <files...>',
      'histories used only for early stopping, the second stage and calibration, never trained on (e.g. another day)',
    )
    .requiredOption('--out <dir>', 'output directory, e.g. models/mine')
    .option('--horizon <duration>', 'label horizon', parseDurationMs, 3_600_000)
    .option('--every <duration>', 'snapshot step', parseDurationMs, 300_000)
    .option(
      '--max-margin-ratio <x>',
      'train, calibrate and test on the snapshot rows whose equity/MM is below x only (a score for the accounts a gate at x lets the reduce tier act on)',
      parseRatioAbove1,
    )
    .option(
      '--epochs <n>',
      `maximum epochs, 1..${MAX_EPOCHS} (early stopping may end sooner)`,
      parseEpochs,
      30,
    )
    .option('--seed <n>', 'seed', parseIntArg, 1)
    .option('--hidden <units>', 'hidden layer sizes, e.g. 32,16', parseHidden)
    .option('--calibration <method>', 'platt | isotonic | auto', parseCalibration, 'auto')
    .option(
      '--calibration-weighting <how>',
      'rows | histories: weigh the calibration rows (second stage, calibration, margin-rule baseline) alike, or each history alike whatever its length',
      parseWeighting,
      'rows',
    )
    .option(
      '--negative-sample <share>',
      'share of non-default training rows kept (every default is kept; calibration rows never sampled)',
      parseShare,
      DEFAULT_NEGATIVE_SAMPLE,
    )
    .option(
      '--weight-ema <decay>',
      'average the weights over batches with this decay, e.g. 0.999 (0: off); validation and the saved network use the average',
      parseDecay,
      0,
    )
    .option(
      '--stage-cross-fit',
      'fit the second stage and calibration on out-of-day scores: each training history scored by a network trained on the others (one more network per history)',
      false,
    )
    .option('--no-stack', 'no second stage (network logit + margin-rule distance) before calibration')
    .option(
      '--stack-features <names>',
      'comma-separated feature columns the second stage adds to the network logit, as ln(0.05 + x)',
      parseNames,
      [...STACK_FEATURES],
    )
    .option('--no-progress', 'no progress on stderr')
    .action(async (opts: TrainCliOptions) => {
      const quiet = !opts.progress;
      const bar = new SingleBar({
        format: '{phase} |{bar}| epoch {value}/{total} loss {loss} val {val} | ETA {eta_formatted}',
        stream: process.stderr,
        hideCursor: true,
        noTTYOutput: true,
        notTTYSchedule: 10_000,
      });
      let barModel = '';
      const result = await runTraining({
        events: opts.events,
        validate: opts.validate,
        calibrateOn: opts.calibrateOn,
        out: opts.out,
        horizonMs: opts.horizon,
        everyMs: opts.every,
        maxMarginRatio: opts.maxMarginRatio,
        epochs: opts.epochs,
        seed: opts.seed,
        hidden: opts.hidden,
        calibration: opts.calibration,
        negativeSample: opts.negativeSample,
        weightEma: opts.weightEma,
        stack: opts.stack,
        stackFeatures: opts.stackFeatures,
        calibrationWeighting: opts.calibrationWeighting,
        stageCrossFit: opts.stageCrossFit,
        onProgress: (p) => {
          if (quiet) return;
          if (p.phase === 'read') process.stderr.write(`\rreading ${p.file}: ${p.events} events`);
          else if (p.phase === 'fit') {
            const label = fitLabel(p);
            if (barModel !== label) {
              if (barModel) bar.stop();
              else process.stderr.write('\n');
              barModel = label;
              bar.start(p.epoch.epochs, 0, { phase: label, loss: '-', val: '-' });
            }
            bar.update(p.epoch.epoch, {
              phase: label,
              loss: p.epoch.loss.toFixed(4),
              val: p.epoch.valLoss.toFixed(4),
            });
          } else {
            if (barModel) {
              bar.stop();
              barModel = '';
            }
            process.stderr.write(`${p.phase}: ${p.detail}\n`);
          }
        },
      });
      process.stdout.write(`model written to ${result.dir}\n\n${metricsTable(result.metadata)}\n`);
    });
}

export function registerWorker(program: Command): void {
  program
    .command('training-worker')
    .description('process `training` jobs from the BullMQ queue (same options as train, as job data)')
    .action(async () => {
      const { ensureRedis } = await import('../../redis/ensure-redis.js');
      const { startTrainingWorker } = await import('../../../training/worker.js');
      const redis = await ensureRedis();
      const worker = startTrainingWorker({ url: redis.url, maxRetriesPerRequest: null });
      process.stderr.write(`training worker waiting for jobs on ${redis.url}\n`);
      const stop = async () => {
        await worker.close();
        await redis.stop();
        process.exit(0);
      };
      process.once('SIGTERM', stop);
      process.once('SIGINT', stop);
    });
}

function parseEpochs(v: string): number {
  const n = parseIntArg(v);
  if (n < 1 || n > MAX_EPOCHS)
    throw new InvalidArgumentError(`expected a number of epochs from 1 to ${MAX_EPOCHS}, got "${v}"`);
  return n;
}

function parseHidden(v: string): number[] {
  const sizes = v.split(',').map((s) => s.trim());
  if (!sizes.every((s) => /^[1-9]\d*$/.test(s) && Number.isSafeInteger(Number(s))))
    throw new InvalidArgumentError(`expected comma-separated positive layer sizes, e.g. 32,16, got "${v}"`);
  return sizes.map(Number);
}

function parseShare(v: string): number {
  const n = Number(v);
  if (!(n > 0 && n <= 1)) throw new InvalidArgumentError(`expected a share in (0, 1], got "${v}"`);
  return n;
}

function parseRatioAbove1(v: string): number {
  const n = Number(v);
  if (!(Number.isFinite(n) && n > 1))
    throw new InvalidArgumentError(`expected an equity/MM ratio above 1, got "${v}"`);
  return n;
}

function parseDecay(v: string): number {
  const n = Number(v);
  if (!(n >= 0 && n < 1)) throw new InvalidArgumentError(`expected a decay in [0, 1), got "${v}"`);
  return n;
}

function parseCalibration(v: string): TrainCliOptions['calibration'] {
  if (v === 'platt' || v === 'isotonic' || v === 'auto') return v;
  throw new InvalidArgumentError(`expected platt, isotonic or auto, got "${v}"`);
}

function parseWeighting(v: string): CalibrationWeighting {
  if (v === 'rows' || v === 'histories') return v;
  throw new InvalidArgumentError(`expected rows or histories, got "${v}"`);
}

function parseNames(v: string): string[] {
  const names = v
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  const unknown = names.filter((n) => !(FEATURE_NAMES as readonly string[]).includes(n));
  if (names.length === 0 || unknown.length > 0)
    throw new InvalidArgumentError(
      `expected comma-separated feature names, unknown: "${unknown.join(', ') || v}" (see the feature schema)`,
    );
  return names;
}
