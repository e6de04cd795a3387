/**
 * `preempt worker`: an evaluator + execution-worker process (takes free evaluator shards, runs the
 * BullMQ workers; run several for failover and execution capacity).
 */
import type { Command } from 'commander';
import { loadConfig } from '../../service/config.js';
import { makeLogger, startWorker } from '../../service/runtime.js';
import { closeOnSignals } from '../../service/shutdown.js';

export function register(program: Command): void {
  program
    .command('worker')
    .description(
      'run an evaluator and execution-worker process (config from the environment: REDIS_URL, PREEMPT_SHARDS, PREEMPT_VENUE, ...)',
    )
    .action(async () => {
      const config = loadConfig();
      const log = makeLogger(config);
      const worker = await startWorker(config, { log });
      closeOnSignals([worker], log);
    });
}
