/**
 * `preempt start`: the whole service in one process (API + evaluator + execution workers) with the shipped
 * model. Finds Redis (REDIS_URL, else 127.0.0.1:6379, else a private redis-server it starts and says so,
 * else explains how to get one). Without PREEMPT_KEYS_FILE it mints a one-run admin key and prints it,
 * as notebook servers do.
 */
import type { Command } from 'commander';
import { ensureRedis, redactUrl } from '../../redis/ensure-redis.js';
import { KeyStore, mintKey } from '../../service/auth/keys.js';
import { loadConfig } from '../../service/config.js';
import { createMetrics } from '../../service/metrics.js';
import { makeLogger, modelHolderFor, startApi, startWorker } from '../../service/runtime.js';
import { closeOnSignals } from '../../service/shutdown.js';

export function register(program: Command): void {
  program
    .command('start')
    .description('start the risk service (API + evaluator + workers, shipped model) in one process')
    .action(async () => {
      const redis = await ensureRedis();
      const how = {
        env: 'REDIS_URL',
        default: 'the local default',
        private: 'a private redis-server started for this run (data is lost on exit)',
      }[redis.source];
      process.stderr.write(`Redis: ${redactUrl(redis.url)} (${how})\n`);
      const config = loadConfig({ ...process.env, REDIS_URL: redis.url });
      const log = makeLogger(config);
      let keys: KeyStore;
      let oneRunKey: string | undefined;
      if (config.PREEMPT_KEYS_FILE) keys = KeyStore.fromFile(config.PREEMPT_KEYS_FILE);
      else {
        const minted = mintKey(['admin'], 'one-run admin key');
        keys = KeyStore.fromRecords([minted.record]);
        oneRunKey = minted.key;
      }
      const metrics = createMetrics({ defaults: true });
      const model = modelHolderFor(config, log, metrics);
      const status = await model.reload();
      process.stderr.write(
        status.mode === 'model'
          ? `Model: ${status.info?.version} (TF.js backend ${status.info?.backend})\n`
          : `Model: none (${status.error}); running rules-only\n`,
      );
      const worker = await startWorker(config, { log, metrics, model });
      const readiness = () => {
        // a loop that has not turned for 30 s is stuck (it blocks at most 1 s per read)
        const ok = worker.supervisor.healthy(30_000);
        return { ok, detail: { evaluator: { healthy: ok, shards: worker.supervisor.status() } } };
      };
      const api = await startApi(config, { log, metrics, model, keys, readiness });
      const host = config.HOST === '0.0.0.0' ? '127.0.0.1' : config.HOST;
      const base = `http://${host}:${api.port}`;
      process.stderr.write(`preempt is running at ${base}  (docs: ${base}/docs)\n`);
      if (oneRunKey) {
        process.stderr.write(
          'No PREEMPT_KEYS_FILE: an admin key for this run only (use it as Authorization: Bearer KEY):\n',
        );
        process.stdout.write(`${oneRunKey}\n`);
      }
      closeOnSignals([api, worker, { close: () => model.close() }], log, () => redis.stop());
    });
}
