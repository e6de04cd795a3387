/**
 * `preempt api`: an HTTP API process (stateless; run as many as needed against one Redis).
 */
import type { Command } from 'commander';
import { loadConfig } from '../../service/config.js';
import { makeLogger, startApi } from '../../service/runtime.js';
import { closeOnSignals } from '../../service/shutdown.js';

export function register(program: Command): void {
  program
    .command('api')
    .description(
      'run an HTTP API process (config from the environment: PORT, REDIS_URL, PREEMPT_KEYS_FILE, ...)',
    )
    .action(async () => {
      const config = loadConfig();
      const log = makeLogger(config);
      const api = await startApi(config, { log });
      closeOnSignals([api], log);
    });
}
