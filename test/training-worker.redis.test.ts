import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Job, QueueEvents, UnrecoverableError } from 'bullmq';
import { afterEach, describe, expect, it } from 'vitest';
import { readCompatibleMetadata } from '../src/model/artifacts.js';
import {
  processTrainingJob,
  retryable,
  startTrainingWorker,
  TRAINING_QUEUE,
  type TrainingJobProgress,
  trainingQueue,
} from '../training/worker.js';
import { instrument } from './features/builders.js';
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

  it('inputs that fail the deterministic training (a bad event, a directory, an unknown feature) fail at once', async () => {
    const { queue, events } = await setup();
    // a valid instrument, then an event with a bad field on line 2
    const bad = join(dir, 'bad-line.jsonl');
    writeFileSync(
      bad,
      `${JSON.stringify(instrument(1, 'X-PERP'))}\n{"type":"mark","ts":"soon","symbol":"X-PERP","price":1}\n`,
    );
    const badEvent = await queue.add('train', { events: [bad], out: join(dir, 'b') }, { attempts: 3 });
    await expect(badEvent.waitUntilFinished(events, 60_000)).rejects.toThrow(/training failed: .*line 2/);
    expect((await queue.getJob(badEvent.id as string))?.attemptsMade).toBe(1);
    const folder = join(dir, 'a-folder');
    mkdirSync(folder, { recursive: true });
    const notFile = await queue.add('train', { events: [folder], out: join(dir, 'c') }, { attempts: 3 });
    await expect(notFile.waitUntilFinished(events, 30_000)).rejects.toThrow(/input is not a file/);
    expect((await queue.getJob(notFile.id as string))?.attemptsMade).toBe(1);
    const unknown = await queue.add(
      'train',
      { events: [files['may-2021']], out: join(dir, 'd'), stackFeatures: ['no_such_feature'] },
      { attempts: 3 },
    );
    await expect(unknown.waitUntilFinished(events, 30_000)).rejects.toThrow(
      /field stackFeatures\.0: not a feature/,
    );
  }, 120_000);

  it('only failures of the machine are retried', () => {
    const io = (code: string) => Object.assign(new Error(code), { code });
    expect(retryable(io('ENOSPC'))).toBe(true);
    expect(retryable(io('EMFILE'))).toBe(true);
    expect(retryable(io('ENOENT'))).toBe(false);
    expect(retryable(io('EISDIR'))).toBe(false);
    expect(retryable(new Error('0 defaults in the training rows'))).toBe(false);
    expect(retryable(new UnrecoverableError('x'))).toBe(false);
    // wrapped (a model that cannot be read back, an output that cannot be checked): the cause decides
    expect(retryable(new Error('no model at m: EMFILE', { cause: io('EMFILE') }))).toBe(true);
    expect(retryable(new Error('no model at m: ENOENT', { cause: io('ENOENT') }))).toBe(false);
    expect(retryable(io('EBUSY'))).toBe(false);
  });

  it('a progress update that fails does not fail the run (nor the process)', async () => {
    let refused = 0;
    const job = {
      id: 'local',
      data: {
        events: [files['may-2021'], files['flash-crash']],
        validate: [files['black-thursday-2020']],
        out: join(dir, 'no-progress-model'),
        epochs: 1,
        seed: 5,
      },
      updateProgress: () => {
        refused++;
        return Promise.reject(new Error('Missing key for job local. updateProgress'));
      },
    } as unknown as Job;
    const result = await processTrainingJob(job);
    expect(result.dir).toBe(join(dir, 'no-progress-model'));
    expect(refused).toBeGreaterThan(0);
    expect((await readCompatibleMetadata(result.dir)).seed).toBe(5);
  }, 300_000);
});
