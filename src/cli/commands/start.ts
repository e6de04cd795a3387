/**
 * `preempt start` (placeholder until the service lands): reports the TF backend and the Redis it would use.
 */
import type { Command } from 'commander';
import { ensureRedis, redactUrl } from '../../redis/ensure-redis.js';
import { initTf } from '../../tf/runtime.js';

export function register(program: Command): void {
  program
    .command('start')
    .description('start the risk service (API + workers) with the shipped model')
    .action(async () => {
      const { backend } = await initTf();
      process.stdout.write(`TF.js backend: ${backend}\n`);
      const redis = await ensureRedis();
      process.stdout.write(`Redis: ${redactUrl(redis.url)} (${redis.source})\n`);
      process.stdout.write('The HTTP service is not built yet; this command will start it.\n');
      await redis.stop();
    });
}
