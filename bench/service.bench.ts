/**
 * The risk service's hot paths, each beside a baseline measured in the same run:
 * - ingest: validated, de-duplicated, atomically appended events through `POST /v1/events` vs raw
 *   pipelined XADDs of the same JSON (no validation);
 * - evaluation of one mark: features + pd + policy for 10,000 accounts holding the instrument vs the
 *   policy alone on the same accounts (the model is models/default when it loads, else a logistic stand-in);
 * - `POST /v1/risk/query` of 10,000 accounts vs a raw HMGET of the same views.
 * Needs a Redis (REDIS_URL, 127.0.0.1:6379 or a private redis-server); its keys are deleted afterwards.
 */
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import type { CanonicalEvent, CanonicalEventInput } from '../src/events/schema.js';
import { parseEvent } from '../src/events/validate.js';
import { F, FEATURE_COUNT, FEATURE_NAMES, FEATURE_SCHEMA_HASH } from '../src/features/schema.js';
import { DEFAULT_POLICY_CONFIG } from '../src/margin/index.js';
import type { PdScorer } from '../src/model/types.js';
import { ensureRedis } from '../src/redis/ensure-redis.js';
import type { RiskView } from '../src/service/api/schemas.js';
import { createApp } from '../src/service/app.js';
import { KeyStore, mintKey } from '../src/service/auth/keys.js';
import { configFor } from '../src/service/config.js';
import { ShardState } from '../src/service/evaluator/shard-state.js';
import { riskView } from '../src/service/evaluator/views.js';
import { createMetrics } from '../src/service/metrics.js';
import { defaultLoader, ModelHolder } from '../src/service/model/holder.js';
import { keyspace } from '../src/service/state/keys.js';
import { RiskStore } from '../src/service/state/risk-store.js';
import { printRatio, timeItAsync } from './report.js';

const INGEST_EVENTS = 50_000;
const BATCH = 1000;
const ACCOUNTS = 10_000;
const T0 = 1_700_000_000_000; // ms

const standIn: PdScorer = {
  info: {
    version: 'logistic-stand-in',
    schemaHash: FEATURE_SCHEMA_HASH,
    horizonMs: 3_600_000,
    backend: 'js',
    featureNames: FEATURE_NAMES,
    filesVerified: false,
  },
  async score(m, rows) {
    const out = new Float32Array(rows);
    for (let i = 0; i < rows; i++)
      out[i] = 1 / (1 + Math.exp(4 * ((m[i * FEATURE_COUNT + F.margin_ratio_log] ?? 0) - Math.log(3))));
    return out;
  },
  async explain() {
    return [];
  },
  async close() {},
};

function history(): CanonicalEventInput[] {
  const evs: CanonicalEventInput[] = [
    {
      type: 'instrument',
      ts: T0,
      symbol: 'BTC-PERP',
      base: 'BTC',
      tiers: [{ maxNotional: null, imr: 0.02, mmr: 0.01 }],
    },
    { type: 'mark', ts: T0 + 1, symbol: 'BTC-PERP', price: 100 },
  ];
  for (let i = 0; i < ACCOUNTS; i++) {
    const account = `a-${i}`;
    evs.push({ type: 'deposit', ts: T0 + 2, account, amount: 150 + (i % 100) * 20 });
    evs.push({
      type: 'fill',
      ts: T0 + 3,
      account,
      symbol: 'BTC-PERP',
      side: 'buy',
      qty: 20,
      price: 100,
      liquidity: 'taker',
      id: `f-${i}`,
    });
  }
  return evs;
}

export async function run(): Promise<void> {
  const redisHandle = await ensureRedis();
  const prefix = `preempt-bench:service:${randomBytes(4).toString('hex')}`;
  const redis = new Redis(redisHandle.url, { maxRetriesPerRequest: 1 });
  const log = pino({ level: 'silent' });
  const model = new ModelHolder('models/default', defaultLoader, log, FEATURE_SCHEMA_HASH);
  const loaded = await model.reload();
  const scorerName =
    loaded.mode === 'model' ? `model ${loaded.info?.version}` : 'logistic stand-in (no model loaded)';
  const scorer = loaded.mode === 'model' ? undefined : standIn;
  try {
    const config = configFor({ PREEMPT_PREFIX: prefix, REDIS_URL: redisHandle.url, PREEMPT_RATE_LIMIT: 0 });
    const writer = mintKey(['admin']);
    const app = createApp({
      config,
      redis,
      keys: KeyStore.fromRecords([writer.record]),
      model,
      metrics: createMetrics(),
      log,
    }).app;

    // --- ingest ---
    const base = history();
    const events: CanonicalEventInput[] = [base[0] as CanonicalEventInput];
    for (let i = 0; events.length < INGEST_EVENTS; i++)
      events.push({ type: 'mark', ts: T0 + 10 + i, symbol: 'BTC-PERP', price: 100 + (i % 7) });
    const bodies: string[] = [];
    for (let i = 0; i < events.length; i += BATCH) bodies.push(JSON.stringify(events.slice(i, i + BATCH)));
    const ingestMs = await timeItAsync(async () => {
      for (const body of bodies) {
        const res = await app.request('/v1/events', {
          method: 'POST',
          headers: { authorization: `Bearer ${writer.key}`, 'content-type': 'application/json' },
          body,
        });
        if (res.status !== 200) throw new Error(`ingest failed: ${res.status} ${await res.text()}`);
      }
    });
    const rawKey = `${prefix}:raw`;
    const jsons = events.map((e) => JSON.stringify(e));
    const rawMs = await timeItAsync(async () => {
      for (let i = 0; i < jsons.length; i += BATCH) {
        const p = redis.pipeline();
        for (const j of jsons.slice(i, i + BATCH)) p.xadd(rawKey, '*', 'e', j);
        await p.exec();
      }
    });
    printRatio(
      'ingest via POST /v1/events (1000/batch)',
      (events.length / ingestMs) * 1000,
      'raw pipelined XADD, no validation',
      (events.length / rawMs) * 1000,
      'events/s',
    );

    // --- evaluation of one mark over 10,000 holders ---
    const state = new ShardState(0, 1, DEFAULT_POLICY_CONFIG);
    for (const e of base) {
      const p = parseEvent(e);
      if (p.ok) state.apply(p.event as CanonicalEvent);
    }
    const crash = parseEvent({ type: 'mark', ts: T0 + 60_000, symbol: 'BTC-PERP', price: 96 });
    if (crash.ok) state.apply(crash.event);
    const holders = state.holders('BTC-PERP');
    const ts = T0 + 60_000;
    let evaluated = 0;
    const fullMs = await timeItAsync(async () => {
      const matrix = state.features(holders, ts);
      const pd = scorer
        ? await scorer.score(matrix, holders.length)
        : await model.use((s) => s.score(matrix, holders.length));
      const evals = state.decide(holders, Array.from(pd ?? []), ts, false);
      evaluated = evals.length;
    });
    const nulls = new Array<number | null>(holders.length).fill(null);
    const rulesMs = await timeItAsync(async () => {
      state.decide(holders, nulls, ts, false);
    });
    printRatio(
      `evaluate one mark: features + pd + policy [${scorerName}]`,
      (evaluated / fullMs) * 1000,
      'policy alone, rules only',
      (holders.length / rulesMs) * 1000,
      'accounts/s',
    );

    // --- batch risk query ---
    const store = new RiskStore(redis, keyspace(prefix), 1, 0.01);
    const evals = state.decide(holders, nulls, ts, false);
    const views: RiskView[] = evals.map((e) => riskView(e, 0.1, [], null, ts, Date.now()));
    await store.write(0, views);
    const body = JSON.stringify({ accounts: holders });
    const queryMs = await timeItAsync(async () => {
      const res = await app.request('/v1/risk/query', {
        method: 'POST',
        headers: { authorization: `Bearer ${writer.key}`, 'content-type': 'application/json' },
        body,
      });
      if (res.status !== 200) throw new Error(`query failed: ${res.status}`);
      await res.json();
    });
    const hmgetMs = await timeItAsync(async () => {
      await redis.hmget(keyspace(prefix).risk(0), ...holders);
    });
    printRatio('POST /v1/risk/query, 10,000 accounts', queryMs, 'raw HMGET of the same views', hmgetMs, 'ms');
  } finally {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
      cursor = next;
      if (keys.length > 0) await redis.del(...keys);
    } while (cursor !== '0');
    await model.close();
    redis.disconnect();
    await redisHandle.stop();
  }
}
