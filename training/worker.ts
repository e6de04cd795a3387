/**
 * The training job on a queue: `training` jobs carry the same options as `preempt train`; a training worker
 * runs them one at a time (training uses all of a core) and reports progress on the job. An invalid payload
 * fails with UnrecoverableError (no retries); an input that is missing or not a file too. Training is
 * deterministic for its inputs and options, so a run that fails on them (a bad event, too few defaults, an
 * option the data cannot satisfy) would fail the same way again: it is unrecoverable too. Only failures of the
 * machine (disk full, too many open files, out of memory, I/O errors) are left to the job's retries.
 */
import { stat } from 'node:fs/promises';
import { type ConnectionOptions, type Job, Queue, UnrecoverableError, Worker } from 'bullmq';
import { z } from 'zod';
import { FEATURE_NAMES } from '../src/features/schema.js';
import { logger } from '../src/log/logger.js';
import { fitLabel, MAX_EPOCHS, runTraining, type TrainProgress } from './train.js';

export const TRAINING_QUEUE = 'training';

export const TrainingJobSchema = z.object({
  events: z.array(z.string().min(1)).min(1),
  validate: z.array(z.string().min(1)).optional(),
  calibrateOn: z.array(z.string().min(1)).optional(),
  out: z.string().min(1),
  name: z.string().optional(),
  horizonMs: z.number().int().positive().optional(),
  everyMs: z.number().int().positive().optional(),
  maxMarginRatio: z.number().gt(1).optional(),
  epochs: z.number().int().positive().max(MAX_EPOCHS).optional(),
  seed: z.number().int().optional(),
  hidden: z.array(z.number().int().positive()).optional(),
  negativeSample: z.number().gt(0).lte(1).optional(),
  weightEma: z.number().gte(0).lt(1).optional(),
  stack: z.boolean().optional(),
  stackFeatures: z
    .array(
      z
        .string()
        .min(1)
        .refine((f) => (FEATURE_NAMES as readonly string[]).includes(f), {
          message: 'not a feature of the schema',
        }),
    )
    .min(1)
    .optional(),
  calibration: z.enum(['platt', 'isotonic', 'auto']).optional(),
  calibrationWeighting: z.enum(['rows', 'histories']).optional(),
  stageCrossFit: z.boolean().optional(),
});
export type TrainingJob = z.infer<typeof TrainingJobSchema>;

export interface TrainingJobResult {
  dir: string;
  version: string;
  rocAuc: number | null;
}

/** Progress as reported on the job: a phase and, while fitting, the epoch and losses. */
export interface TrainingJobProgress {
  phase: TrainProgress['phase'];
  model?: string;
  epoch?: number;
  epochs?: number;
  loss?: number;
  valLoss?: number;
  detail?: string;
}

export async function processTrainingJob(job: Job): Promise<TrainingJobResult> {
  const parsed = TrainingJobSchema.safeParse(job.data);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new UnrecoverableError(
      `invalid training job: field ${issue?.path.join('.') || '(data)'}: ${issue?.message}`,
    );
  }
  const data = parsed.data;
  for (const f of [...data.events, ...(data.validate ?? []), ...(data.calibrateOn ?? [])]) {
    const st = await stat(f).catch(() => undefined);
    if (!st) throw new UnrecoverableError(`invalid training job: input file not found: ${f}`);
    if (!st.isFile()) throw new UnrecoverableError(`invalid training job: input is not a file: ${f}`);
  }
  let lastReport = 0;
  const result = await runTraining({
    ...data,
    onProgress: (p) => {
      const now = Date.now();
      if (p.phase === 'read' && now - lastReport < 1000) return;
      lastReport = now;
      const progress: TrainingJobProgress =
        p.phase === 'fit'
          ? {
              phase: 'fit',
              model: fitLabel(p),
              epoch: p.epoch.epoch,
              epochs: p.epoch.epochs,
              loss: p.epoch.loss,
              valLoss: p.epoch.valLoss,
            }
          : p.phase === 'read'
            ? { phase: 'read', detail: `${p.file}: ${p.events} events` }
            : { phase: p.phase, detail: p.detail };
      // a progress update that fails (the job removed, Redis away) must not take the worker down
      job.updateProgress(progress).catch((err: unknown) => {
        logger.warn({ err, jobId: job.id }, 'training job progress not reported');
      });
    },
  }).catch((err: unknown) => {
    throw retryable(err) ? err : new UnrecoverableError(`training failed: ${errorText(err)}`);
  });
  return {
    dir: result.dir,
    version: `${result.metadata.name}@${result.metadata.createdAt}`,
    rocAuc: result.metadata.metrics.model.rocAuc ?? null,
  };
}

/**
 * errno codes of the machine, not of the job's inputs: worth a retry (EBUSY is not: a mount point as `--out`
 * is handled before training, and anything else busy would be so again after a whole run)
 */
const MACHINE_ERRORS = new Set([
  'ENOSPC',
  'EDQUOT',
  'EMFILE',
  'ENFILE',
  'ENOMEM',
  'EIO',
  'EAGAIN',
  'EINTR',
  // network filesystems
  'ESTALE',
  'ETIMEDOUT',
  'ECONNRESET',
]);

/**
 * Is `err` a failure of the machine (a retry may succeed) rather than of the job's deterministic inputs?
 * Follows `cause`: a model-load or output error wrapping an EMFILE is the machine's.
 */
export function retryable(err: unknown): boolean {
  for (let e = err, depth = 0; e !== undefined && e !== null && depth < 8; depth++) {
    if (e instanceof UnrecoverableError) return false;
    if (e instanceof Error && /allocation failed|out of memory|Memory\.grow/i.test(e.message)) return true;
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && MACHINE_ERRORS.has(code)) return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}

function errorText(err: unknown): string {
  return err instanceof Error ? `${err.name === 'Error' ? '' : `${err.name}: `}${err.message}` : String(err);
}

export function startTrainingWorker(connection: ConnectionOptions, prefix?: string): Worker {
  return new Worker(TRAINING_QUEUE, processTrainingJob, {
    connection,
    concurrency: 1,
    ...(prefix ? { prefix } : {}),
    // a training run holds the lock for minutes: renew it well inside the default 30 s lock
    lockDuration: 120_000,
  });
}

export function trainingQueue(connection: ConnectionOptions, prefix?: string): Queue {
  return new Queue(TRAINING_QUEUE, { connection, ...(prefix ? { prefix } : {}) });
}
