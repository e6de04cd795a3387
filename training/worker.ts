/**
 * The training job on a queue: `training` jobs carry the same options as `preempt train`; a training worker
 * runs them one at a time (training uses all of a core) and reports progress on the job. An invalid payload
 * fails with UnrecoverableError (no retries); a missing input file too.
 */
import { access } from 'node:fs/promises';
import { type ConnectionOptions, type Job, Queue, UnrecoverableError, Worker } from 'bullmq';
import { z } from 'zod';
import { runTraining, type TrainProgress } from './train.js';

export const TRAINING_QUEUE = 'training';

export const TrainingJobSchema = z.object({
  events: z.array(z.string().min(1)).min(1),
  validate: z.array(z.string().min(1)).optional(),
  calibrateOn: z.array(z.string().min(1)).optional(),
  out: z.string().min(1),
  name: z.string().optional(),
  horizonMs: z.number().int().positive().optional(),
  everyMs: z.number().int().positive().optional(),
  epochs: z.number().int().positive().max(1000).optional(),
  seed: z.number().int().optional(),
  hidden: z.array(z.number().int().positive()).optional(),
  negativeSample: z.number().gt(0).lte(1).optional(),
  weightEma: z.number().gte(0).lt(1).optional(),
  stack: z.boolean().optional(),
  stackFeatures: z.array(z.string().min(1)).min(1).optional(),
  calibration: z.enum(['platt', 'isotonic', 'auto']).optional(),
  calibrationWeighting: z.enum(['rows', 'histories']).optional(),
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
    try {
      await access(f);
    } catch {
      throw new UnrecoverableError(`invalid training job: input file not found: ${f}`);
    }
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
              model: p.model,
              epoch: p.epoch.epoch,
              epochs: p.epoch.epochs,
              loss: p.epoch.loss,
              valLoss: p.epoch.valLoss,
            }
          : p.phase === 'read'
            ? { phase: 'read', detail: `${p.file}: ${p.events} events` }
            : { phase: p.phase, detail: p.detail };
      void job.updateProgress(progress);
    },
  });
  return {
    dir: result.dir,
    version: `${result.metadata.name}@${result.metadata.createdAt}`,
    rocAuc: result.metadata.metrics.model.rocAuc ?? null,
  };
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
