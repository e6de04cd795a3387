/**
 * `GET /v1/queues`: job counts per queue and state, and the most recent failed jobs with their reasons
 * (the JSON fallback of a queue dashboard; bull-board is not installed).
 */
import { z } from 'zod';
import type { ActionProducer } from '../queue/producer.js';
import { defineRoute } from './route.js';

export const QueuesResponseSchema = z.object({
  queues: z.record(z.string(), z.record(z.string(), z.number().int())),
  failed: z.array(
    z.object({
      queue: z.string(),
      jobId: z.string(),
      attempts: z.number().int(),
      reason: z.string(),
      failedAt: z.number().nullable(),
    }),
  ),
});

export function queuesRoute(producer: ActionProducer) {
  return defineRoute(
    {
      method: 'get',
      path: '/v1/queues',
      tag: 'actions',
      summary: 'Execution queue depths and the latest failed jobs',
      scope: 'admin',
      responses: {
        200: { description: 'counts by state, newest failures first', schema: QueuesResponseSchema },
      },
    },
    async (c) => {
      const queues = await producer.depths();
      const failed = [];
      for (const [name, q] of Object.entries(producer.queues)) {
        for (const job of await q.getFailed(0, 19))
          failed.push({
            queue: name,
            jobId: job.id ?? '',
            attempts: job.attemptsMade,
            reason: job.failedReason ?? '',
            failedAt: job.finishedOn ?? null,
          });
      }
      failed.sort((a, b) => (b.failedAt ?? 0) - (a.failedAt ?? 0));
      return c.json({ queues, failed });
    },
  );
}
