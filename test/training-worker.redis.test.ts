import { join } from 'node:path';
import { QueueEvents } from 'bullmq';
import { afterEach, describe, expect, it } from 'vitest';
import { readCompatibleMetadata } from '../src/model/artifacts.js';
import {
  startTrainingWorker,
  TRAINING_QUEUE,
  type TrainingJobProgress,
  trainingQueue,
} from '../training/worker.js';
import { connect, deletePrefix, freshPrefix, redisUrl } from './helpers/redis.js';
import { useSimHistories } from './helpers/sim-history.js';

const { dir, files } = useSimHistories('train-job');

describe('training as a BullMQ job', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  async function setup() {
    const prefix = freshPrefix('training');
    const connection = { url: redisUrl(), maxRetriesPerRequest: null };
    const queue = trainingQueue(connection, prefix);
    const events = new QueueEvents(TRAINING_QUEUE, { connection, prefix });
    const worker = startTrainingWorker(connection, prefix);
    const redis = connect();
    cleanups.push(async () => {
      await worker.close();
      await events.close();
      await queue.close();
      await deletePrefix(redis, prefix);
      redis.disconnect();
    });
    await events.waitUntilReady();
    return { queue, events };
  }

  it('a training worker runs the job, reports epoch progress on it and writes the model', async () => {
    const { queue, events } = await setup();
    const progress: TrainingJobProgress[] = [];
    events.on('progress', ({ data }) => progress.push(data as TrainingJobProgress));
    const out = join(dir, 'job-model');
    const job = await queue.add('train', {
      events: [files['may-2021'], files['flash-crash']],
      validate: [files['black-thursday-2020']],
      out,
      epochs: 2,
      seed: 3,
      calibrationWeighting: 'histories',
    });
    const result = (await job.waitUntilFinished(events, 240_000)) as { dir: string; version: string };
    expect(result.dir).toBe(out);
    expect(result.version).toMatch(/^job-model@/);
    const meta = await readCompatibleMetadata(out);
    expect(meta.seed).toBe(3);
    // job options reach the training: the weighting is recorded with the model
    expect(meta.training.calibrationWeighting).toBe('histories');
    const fits = progress.filter((p) => p.phase === 'fit');
    expect(fits.length).toBeGreaterThan(0);
    expect(fits.every((p) => typeof p.epoch === 'number' && Number.isFinite(p.loss))).toBe(true);
  }, 300_000);

  it('an invalid payload fails at once with no retries', async () => {
    const { queue, events } = await setup();
    const job = await queue.add('train', { events: [], out: '' }, { attempts: 3 });
    await expect(job.waitUntilFinished(events, 30_000)).rejects.toThrow(/invalid training job: field events/);
    const failed = await queue.getJob(job.id as string);
    expect(failed?.attemptsMade).toBe(1);
    const badOption = await queue.add(
      'train',
      { events: [files['may-2021']], out: join(dir, 'w'), calibrationWeighting: 'days' },
      { attempts: 3 },
    );
    await expect(badOption.waitUntilFinished(events, 30_000)).rejects.toThrow(
      /invalid training job: field calibrationWeighting/,
    );
    const missing = await queue.add(
      'train',
      { events: [join(dir, 'nope.jsonl')], out: join(dir, 'x') },
      { attempts: 3 },
    );
    await expect(missing.waitUntilFinished(events, 30_000)).rejects.toThrow(/input file not found/);
    // a calibrate-on history is part of the payload and checked like the others
    const missingCal = await queue.add(
      'train',
      { events: [files['may-2021']], calibrateOn: [join(dir, 'cal-nope.jsonl')], out: join(dir, 'y') },
      { attempts: 3 },
    );
    await expect(missingCal.waitUntilFinished(events, 30_000)).rejects.toThrow(
      /input file not found: .*cal-nope\.jsonl/,
    );
  }, 60_000);
});
