/**
 * The deployment shape, for real: two API processes and two worker processes (each evaluating one of two
 * shards) on one Redis, fed over HTTP, make the same decisions as one in-process service on the same log,
 * with no execution twice. Then a standby worker takes over a killed worker's shard, rebuilds it from the
 * log and keeps evaluating; and every process shuts down gracefully on SIGTERM.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { RiskView } from '../../src/service/api/schemas.js';
import { appendKeyRecord, mintKey } from '../../src/service/auth/keys.js';
import { keyspace, shardOf } from '../../src/service/state/keys.js';
import { connect, deletePrefix, freshPrefix, redisUrl } from '../helpers/redis.js';
import { crashHistory } from './crash-history.js';
import { mark, T0 } from './events-fixtures.js';
import { makeHarness } from './harness.js';
import { allAudit, decisionKeys, evaluatedToTail, QueueHold, releaseAndSettle } from './settle.js';
import { eventually } from './wait.js';

interface Proc {
  child: ChildProcess;
  info: { role: string; pid: number; port?: number; shards?: number[] };
  stderr: string[];
}

const redis = connect();
const dir = mkdtempSync(join(tmpdir(), 'preempt-mp-'));
const procs: Proc[] = [];
const prefixes: string[] = [];

afterAll(async () => {
  for (const p of procs) if (p.child.exitCode === null) p.child.kill('SIGKILL');
  for (const prefix of prefixes) await deletePrefix(redis, prefix);
  redis.disconnect();
  rmSync(dir, { recursive: true, force: true });
});

function start(role: 'api' | 'worker', env: Record<string, string>): Promise<Proc> {
  const child = spawn(
    process.execPath,
    ['--no-wasm-dynamic-tiering', '--import', 'tsx', 'test/service/service-process.ts', role],
    {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const stderr: string[] = [];
  child.stderr?.on('data', (d: Buffer) => stderr.push(d.toString()));
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const line = out.split('\n').find((l) => l.startsWith('{"ready"'));
      if (line) {
        const p = { child, info: JSON.parse(line) as Proc['info'], stderr };
        procs.push(p);
        resolve(p);
      }
    });
    child.once('exit', (code) =>
      reject(new Error(`${role} exited (${code}) before ready: ${stderr.join('').slice(-2000)}`)),
    );
  });
}

const BATCH = 12;
function batches<T>(xs: readonly T[]): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < xs.length; i += BATCH) out.push(xs.slice(i, i + BATCH));
  return out;
}

const history = crashHistory(40);

describe('two API processes and two worker processes on one Redis', () => {
  it('decide as one process does, execute each decision once, fail over and shut down cleanly', async () => {
    // --- the reference: one in-process service (two shards) on the same log ---
    const single = await makeHarness('svc-mp-single', { worker: true, env: { PREEMPT_SHARDS: 2 } });
    prefixes.push(single.prefix);
    const singleHold = new QueueHold(redis, single.prefix);
    await singleHold.pause();
    for (const b of batches(history)) {
      const res = await single.call('POST', '/v1/events', { key: single.keys['events:write'], body: b });
      expect(res.status).toBe(200);
    }
    await evaluatedToTail(redis, single.prefix, 2);
    const singleAudit = await releaseAndSettle(redis, single.prefix, 2, singleHold);
    await singleHold.close();
    await single.close();
    const expected = decisionKeys(singleAudit);
    expect(expected.length).toBeGreaterThan(3);

    // --- the deployment: 2 API + 2 worker processes (one shard each) + a standby worker ---
    const prefix = freshPrefix('svc-mp');
    prefixes.push(prefix);
    const keysFile = join(dir, 'keys.jsonl');
    const admin = mintKey(['admin']);
    appendKeyRecord(keysFile, admin.record);
    const env = {
      REDIS_URL: redisUrl(),
      PREEMPT_PREFIX: prefix,
      PREEMPT_KEYS_FILE: keysFile,
      PORT: '0',
      HOST: '127.0.0.1',
      PREEMPT_SHARDS: '2',
      PREEMPT_WORKER_MAX_SHARDS: '1',
      PREEMPT_SHARD_LEASE_MS: '1500',
      PREEMPT_LOG_LEVEL: 'warn',
      PREEMPT_RATE_LIMIT: '0',
    };
    const hold = new QueueHold(redis, prefix);
    await hold.pause();
    const w1 = await start('worker', env);
    const w2 = await start('worker', env);
    const [a1, a2, standby] = await Promise.all([start('api', env), start('api', env), start('worker', env)]);
    expect([w1.info.shards, w2.info.shards, standby.info.shards]).toEqual([[0], [1], []]);
    const urls = [a1, a2].map((p) => `http://127.0.0.1:${p.info.port}`);
    const post = async (url: string, body: unknown) => {
      const res = await fetch(`${url}/v1/events`, {
        method: 'POST',
        headers: { authorization: `Bearer ${admin.key}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      expect(res.status).toBe(200);
    };
    // the same log as the reference: batches alternate between the two API processes, in order
    for (const [i, b] of batches(history).entries()) await post(urls[i % 2] as string, b);
    await evaluatedToTail(redis, prefix, 2);
    const audit = await releaseAndSettle(redis, prefix, 2, hold);
    await hold.close();

    expect(decisionKeys(audit)).toEqual(expected);
    const executions = audit.filter((e) => e.kind === 'execution');
    // decisions and restriction changes: each job ran exactly once
    const decided = new Set(
      audit.filter((e) => e.kind === 'decision' || e.kind === 'restriction').map((e) => e.jobId),
    );
    expect(executions.map((e) => e.jobId).sort()).toEqual([...decided].sort()); // each job ran exactly once
    const ks = keyspace(prefix);
    const fills = (await redis.xrange(ks.stream, '-', '+')).filter(([, f]) => f[1]?.includes('"id":"exec-'));
    expect(new Set(fills.map(([, f]) => JSON.parse(f[1] as string).id)).size).toBe(fills.length);
    // reduce-only held: no long account was flipped short by our executions
    const views = (await fetch(`${urls[1]}/v1/risk/query`, {
      method: 'POST',
      headers: { authorization: `Bearer ${admin.key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ accounts: history.flatMap((e) => (e.type === 'deposit' ? [e.account] : [])) }),
    }).then((r) => r.json())) as { results: RiskView[] };
    for (const v of views.results)
      for (const p of v.positions) expect(Math.abs(p.qty)).toBeLessThanOrEqual(20 + 1e-9);

    // --- failover: kill the evaluator of shard 0; the standby rebuilds it from the log and goes on ---
    w1.child.kill('SIGKILL');
    const ts = T0 + 60 * 60_000;
    await post(urls[0] as string, [mark(86, ts)]);
    const shard0 = views.results.find((v) => v.positions.length > 0 && shardOf(v.account, 2) === 0)
      ?.account as string;
    const seen = await eventually(
      async () =>
        (await fetch(`${urls[0]}/v1/accounts/${shard0}/risk`, {
          headers: { authorization: `Bearer ${admin.key}` },
        }).then((r) => r.json())) as RiskView,
      (v) => v.asOf === ts,
      'the standby to evaluate shard 0 at the new mark',
      30_000,
    );
    expect(seen.positions[0]?.mark).toBe(86);
    expect(await redis.get(ks.shardLease(0))).toMatch(new RegExp(`^${standby.info.pid}-`));

    // --- graceful shutdown ---
    const exits = [a1, a2, w2, standby].map(
      (p) => new Promise<number | null>((r) => p.child.once('exit', (code) => r(code))),
    );
    for (const p of [a1, a2, w2, standby]) p.child.kill('SIGTERM');
    expect(await Promise.all(exits)).toEqual([0, 0, 0, 0]);
    expect(await redis.get(ks.shardLease(1))).toBeNull(); // released on shutdown, not left to expire
    expect((await allAudit(redis, prefix)).length).toBeGreaterThanOrEqual(audit.length);
  });
});
