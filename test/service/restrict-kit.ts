/**
 * What the restriction tests share: a harness with a paused queue hold and the `restrict` queue, events posted
 * and evaluated to the tail, the risk view, the restrict jobs by id, and the harness's workers started against a
 * venue.
 */
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { expect } from 'vitest';
import type { RiskView } from '../../src/service/api/schemas.js';
import type { RestrictJob } from '../../src/service/queue/job.js';
import { startWorker, type WorkerHandle } from '../../src/service/runtime.js';
import { keyspace } from '../../src/service/state/keys.js';
import type { SimulatedVenue } from '../../src/service/venue/simulated.js';
import { type Harness, makeHarness, silent } from './harness.js';
import { ALL_JOB_STATES, evaluatedToTail, QueueHold } from './settle.js';

export interface RestrictKit {
  h: Harness;
  hold: QueueHold;
  restrictQ: Queue;
  /** posts events and waits until the evaluator has decided on them */
  post(body: unknown[]): Promise<void>;
  risk(account: string): Promise<RiskView>;
  /** restrict jobs by id, with their payloads */
  jobs(): Promise<Record<string, RestrictJob>>;
  /** starts the harness's workers (short BullMQ timings) executing against `venue`; the caller closes them */
  startWorker(venue: SimulatedVenue): Promise<WorkerHandle>;
  /** closes the queue, the hold and the harness (not `redis`) */
  close(): Promise<void>;
}

/** A harness named `name` with `policy` as PREEMPT_POLICY, its queues held (paused) until the test resumes them. */
export async function restrictKit(redis: Redis, name: string, policy: object): Promise<RestrictKit> {
  const h = await makeHarness(name, { env: { PREEMPT_POLICY: JSON.stringify(policy) } });
  const hold = new QueueHold(redis, h.prefix);
  const restrictQ = new Queue('restrict', { connection: redis, prefix: keyspace(h.prefix).bull });
  await hold.pause();
  return {
    h,
    hold,
    restrictQ,
    post: async (body) => {
      const res = await h.call('POST', '/v1/events', { key: h.keys['events:write'], body });
      expect(res.status).toBe(200);
      await evaluatedToTail(redis, h.prefix, 1);
    },
    risk: async (account) => {
      const res = await h.call('GET', `/v1/accounts/${account}/risk`, { key: h.keys['score:read'] });
      expect(res.status).toBe(200);
      return (await res.json()) as RiskView;
    },
    jobs: async () => {
      const all = await restrictQ.getJobs([...ALL_JOB_STATES]);
      return Object.fromEntries(all.map((j) => [j.id as string, j.data as RestrictJob]));
    },
    startWorker: (venue) =>
      startWorker(h.config, {
        log: silent,
        metrics: h.metrics,
        model: h.model,
        venue,
        tuning: { blockMs: 100, lockDurationMs: 2000, stalledIntervalMs: 1000 },
      }),
    close: async () => {
      await hold.close();
      await restrictQ.close();
      await h.close();
    },
  };
}
