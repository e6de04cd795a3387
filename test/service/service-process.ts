/**
 * A service process for the multi-process test: `api` or `worker`, configured from the environment like
 * `preempt api` / `preempt worker`, but scoring with the deterministic test model. Prints one JSON line
 * `{"ready":true,...}` on stdout when up; exits 0 after a graceful SIGTERM.
 */
import { loadConfig } from '../../src/service/config.js';
import { makeLogger, startApi, startWorker } from '../../src/service/runtime.js';
import { closeOnSignals } from '../../src/service/shutdown.js';
import { testModelLoader } from './test-model.js';

const role = process.argv[2];
const config = loadConfig();
const log = makeLogger(config);
const tuning = { blockMs: 100, lockDurationMs: 2000, stalledIntervalMs: 1000 };
if (role === 'api') {
  const api = await startApi(config, { log, loader: testModelLoader });
  process.stdout.write(`${JSON.stringify({ ready: true, role, pid: process.pid, port: api.port })}\n`);
  closeOnSignals([api], log);
} else if (role === 'worker') {
  const worker = await startWorker(config, { log, loader: testModelLoader, tuning });
  const waitForShard = async () => {
    for (let i = 0; i < 100 && worker.supervisor.shards().length === 0; i++)
      await new Promise((r) => setTimeout(r, 20));
  };
  await waitForShard();
  process.stdout.write(
    `${JSON.stringify({ ready: true, role, pid: process.pid, shards: worker.supervisor.shards() })}\n`,
  );
  closeOnSignals([worker], log);
} else {
  process.stderr.write('usage: service-process.ts api|worker\n');
  process.exit(2);
}
