/**
 * The whole loop against a real Redis: a small crash history ingested over the API, the evaluator
 * re-evaluating holders on each mark, decisions turned into jobs, the simulated venue executing them,
 * fills coming back into the log and the queries reflecting all of it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RiskView } from '../../src/service/api/schemas.js';
import { startWorker } from '../../src/service/runtime.js';
import type { AuditEntry } from '../../src/service/state/audit.js';
import { decodeEntry } from '../../src/service/state/event-log.js';
import { keyspace } from '../../src/service/state/keys.js';
import { MemorySink, simulate } from '../../src/sim/index.js';
import { connect } from '../helpers/redis.js';
import { deposit, fill, instrument, mark, T0 } from './events-fixtures.js';
import { type Harness, makeHarness, silent } from './harness.js';
import { allAudit, QueueHold, releaseAndSettle } from './settle.js';
import { eventually } from './wait.js';

const MIN = 60_000; // ms

/** safe: 10x over-collateralised; risky: pd crosses the reduce tier at 88; doomed: below MM at 90 */
const crashHistory = [
  instrument(),
  mark(100, T0 + 1),
  deposit('safe', 10_000, T0 + 2),
  deposit('risky', 300, T0 + 2),
  deposit('doomed', 150, T0 + 2),
  fill('safe', 'buy', 10, 100, T0 + 3),
  fill('risky', 'buy', 20, 100, T0 + 3),
  fill('doomed', 'buy', 20, 100, T0 + 3),
  mark(95, T0 + MIN),
  mark(90, T0 + 2 * MIN),
  mark(88, T0 + 3 * MIN),
];

let h: Harness;
const redis = connect();

beforeAll(async () => {
  h = await makeHarness('svc-eval', { worker: true });
});
afterAll(async () => {
  await h.close();
  redis.disconnect();
});

const risk = async (account: string): Promise<RiskView | undefined> => {
  const res = await h.call('GET', `/v1/accounts/${account}/risk`, { key: h.keys['score:read'] });
  return res.status === 200 ? ((await res.json()) as RiskView) : undefined;
};
const audit = async (): Promise<AuditEntry[]> =>
  ((await (await h.call('GET', '/v1/actions?limit=1000')).json()) as { items: AuditEntry[] }).items;

describe('evaluation loop', () => {
  it('turns a crash into decisions, executes them on the simulated venue and records the fills', async () => {
    const res = await h.call('POST', '/v1/events', { key: h.keys['events:write'], body: crashHistory });
    expect(await res.json()).toMatchObject({ accepted: crashHistory.length });

    // the decisions appear: doomed was reduced early at 95, then liquidated below MM at 90; risky reduced at 88
    const decisions = await eventually(
      async () => (await audit()).filter((e) => e.kind === 'decision'),
      (d) => d.length >= 3,
      'three decisions',
    );
    const byJob = new Map(decisions.map((d) => [d.jobId, d]));
    expect([...byJob.keys()].sort()).toEqual([
      'deleverage-doomed-1',
      'deleverage-risky-1',
      'liquidate-doomed-1',
    ]);
    expect(byJob.get('liquidate-doomed-1')?.data).toMatchObject({
      decision: { action: 'LIQUIDATE', rule: 'equity-below-mm', pd: expect.any(Number) },
    });
    const risky = byJob.get('deleverage-risky-1')?.data as {
      decision: { pd: number; action: string };
      orders: { side: string }[];
    };
    expect(risky.decision.action).toBe('REDUCE');
    expect(risky.decision.pd).toBeGreaterThanOrEqual(0.2);
    expect(risky.orders[0]?.side).toBe('sell');

    // every job is executed or skipped exactly once; executed fills come back into the log
    const executions = await eventually(
      async () => (await audit()).filter((e) => e.kind === 'execution' && e.data.kind !== 'restrict'),
      (x) => x.length === 3,
      'three executions',
    );
    expect(new Set(executions.map((e) => e.jobId)).size).toBe(3);
    const ks = keyspace(h.prefix);
    const logged = await eventually(
      async () => (await redis.xrange(ks.stream, '-', '+')).map(([, f]) => decodeEntry(f)),
      (evs) => evs.length > crashHistory.length,
      'fills recorded back',
    );
    const ours = logged.slice(crashHistory.length);
    expect(
      ours.every((e) => e && (e.type === 'fill' || e.type === 'liquidation') && e.id?.startsWith('exec-')),
    ).toBe(true);
    expect(ours.some((e) => e?.type === 'fill' && e.account === 'risky')).toBe(true);

    // the evaluator applies them: risky is smaller, nobody flipped short, every position change settled
    const settledRisky = await eventually(
      () => risk('risky'),
      (v) => (v?.positions[0]?.qty ?? 20) < 20,
      'risky reduced',
    );
    const riskyFill = ours.find((e) => e?.type === 'fill' && e.account === 'risky');
    if (riskyFill?.type === 'fill') expect(riskyFill.price).toBeLessThan(88); // sold into the book, with slippage
    expect(settledRisky?.positions[0]?.qty).toBeGreaterThan(0);
    const doomed = await risk('doomed');
    expect(doomed?.positions.every((p) => p.qty >= 0)).toBe(true);
    const settled = await eventually(
      async () => (await audit()).filter((e) => e.kind === 'settled'),
      (s) => s.length === ours.length,
      'settled entries',
    );
    expect(
      settled.every((s) => typeof (s.data.after as { equity?: number } | null)?.equity === 'number'),
    ).toBe(true);

    // the safe account was evaluated and left alone
    const safe = await risk('safe');
    expect(safe).toMatchObject({ decision: 'HEALTHY', modelVersion: 'test@1', asOf: expect.any(Number) });
    expect(safe?.pd).toBeLessThan(0.05);
  });

  it('serves the at-risk list, batch queries and the evaluation metrics', async () => {
    const atRisk = await h.call('GET', '/v1/accounts/at-risk?minPd=0.05&limit=10', {
      key: h.keys['score:read'],
    });
    const list = ((await atRisk.json()) as { items: { account: string; pd: number }[] }).items;
    expect(list.length).toBeGreaterThan(0);
    expect(list.map((i) => i.account)).not.toContain('safe');
    const pds = list.map((i) => i.pd);
    expect([...pds].sort((a, b) => b - a)).toEqual(pds);
    expect(pds.every((p) => p >= 0.05)).toBe(true);

    const q = await h.call('POST', '/v1/risk/query', {
      key: h.keys['score:read'],
      body: { accounts: ['safe', 'risky', 'ghost'] },
    });
    const body = (await q.json()) as { results: RiskView[]; missing: string[] };
    expect(body.results.map((r) => r.account)).toEqual(['safe', 'risky']);
    expect(body.missing).toEqual(['ghost']);
    const risky = body.results[1];
    expect(risky?.reasons.length).toBeGreaterThan(0);

    const metrics = await (await h.call('GET', '/metrics', { key: null })).text();
    expect(metrics).toMatch(/preempt_decisions_total\{decision="LIQUIDATE"\} [1-9]/);
    expect(metrics).toMatch(/preempt_evaluation_lag_seconds\{shard="0"\}/);
    expect(metrics).toMatch(/preempt_evaluation_backlog_entries\{shard="0"\} 0/);
    expect(metrics).toMatch(/preempt_queue_depth\{queue="deleverage",state="completed"\} [1-9]/);
  });

  it('a later mark re-evaluates only the accounts holding that instrument', async () => {
    const before = await risk('safe');
    await h.call('POST', '/v1/events', {
      key: h.keys['events:write'],
      body: [instrument('ETH-PERP', T0 + 4 * MIN), mark(10, T0 + 4 * MIN + 1, 'ETH-PERP')],
    });
    await h.call('POST', '/v1/events', { key: h.keys['events:write'], body: [mark(89, T0 + 5 * MIN)] });
    const after = await eventually(
      () => risk('safe'),
      (v) => v?.asOf === T0 + 5 * MIN,
      'safe re-evaluated at the BTC mark',
    );
    expect(before?.asOf).toBeLessThan(after?.asOf ?? 0);
    expect(after?.positions[0]?.mark).toBe(89);
  });
});

describe('evaluator recovery', () => {
  it('replays what a dead evaluator acknowledged silently and redoes what it left pending, once', async () => {
    const r = await makeHarness('svc-recover');
    const ks = keyspace(r.prefix);
    const group = ks.shardGroup(0);
    const post = async (body: unknown[]) => {
      const res = await r.call('POST', '/v1/events', { key: r.keys['events:write'], body });
      expect(res.status).toBe(200);
    };
    try {
      // a previous evaluator read the setup and the first crash mark, acted on them, acknowledged them ...
      await post(crashHistory.slice(0, 9));
      await redis.xgroup('CREATE', ks.stream, group, '0', 'MKSTREAM');
      const first = (await redis.xreadgroup(
        'GROUP',
        group,
        'dead',
        'COUNT',
        100,
        'STREAMS',
        ks.stream,
        '>',
      )) as [string, [string, string[]][]][];
      await redis.xack(ks.stream, group, ...(first[0]?.[1] ?? []).map(([id]) => id));
      // ... then read the next two marks and died before finishing them
      await post(crashHistory.slice(9));
      await redis.xreadgroup('GROUP', group, 'dead', 'COUNT', 100, 'STREAMS', ks.stream, '>');
      expect(((await redis.xpending(ks.stream, group)) as [number])[0]).toBe(2);

      const worker = await startWorker(
        { ...r.config, PREEMPT_METRICS_PORT: 0, HOST: '127.0.0.1' },
        {
          log: silent,
          model: r.model,
          metrics: r.metrics,
          tuning: { blockMs: 100 },
        },
      );
      try {
        const decided = await eventually(
          async () =>
            (await allAudit(redis, r.prefix)).filter((e) => e.kind === 'decision').map((e) => e.jobId),
          (ids) => ids.length >= 2,
          'the pending marks to be evaluated',
        );
        await eventually(
          async () => ((await redis.xpending(ks.stream, group)) as [number])[0],
          (n) => n === 0,
          'the pending entries to be acknowledged',
        );
        // the 95 mark's REDUCE of doomed was the dead evaluator's to act on: replayed, not re-decided
        expect(decided.sort()).toEqual(['deleverage-risky-1', 'liquidate-doomed-1']);
        expect((await riskOf(r, 'risky'))?.asOf).toBeGreaterThanOrEqual(T0 + 3 * MIN);
        // the worker process's own ops endpoints
        const ops = `http://127.0.0.1:${worker.ops?.port}`;
        expect(await (await fetch(`${ops}/readyz`)).json()).toMatchObject({
          ready: true,
          redis: true,
          evaluator: { healthy: true },
        });
        expect(await (await fetch(`${ops}/metrics`)).text()).toMatch(
          /preempt_decisions_total\{decision="LIQUIDATE"\} [1-9]/,
        );
      } finally {
        await worker.close();
      }
    } finally {
      await r.close();
    }
  });
});

async function riskOf(h2: Harness, account: string): Promise<RiskView | undefined> {
  const res = await h2.call('GET', `/v1/accounts/${account}/risk`, { key: h2.keys['score:read'] });
  return res.status === 200 ? ((await res.json()) as RiskView) : undefined;
}

describe('a simulated crash day', () => {
  it('ingested over the API, produces decisions that the simulated venue executes exactly once', async () => {
    const sink = new MemorySink();
    await simulate('flash-crash', { accounts: 30, seed: 7, sink });
    const s = await makeHarness('svc-simday', { worker: true });
    try {
      for (let i = 0; i < sink.events.length; i += 2000) {
        const res = await s.call('POST', '/v1/events', {
          key: s.keys['events:write'],
          body: sink.events.slice(i, i + 2000),
        });
        expect(res.status).toBe(200);
      }
      const hold = new QueueHold(redis, s.prefix);
      const audit = await releaseAndSettle(redis, s.prefix, 1, hold);
      await hold.close();
      const decisions = audit.filter((e) => e.kind === 'decision');
      expect(decisions.length).toBeGreaterThan(0);
      const executions = audit.filter((e) => e.kind === 'execution' && e.data.kind !== 'restrict');
      expect(executions.map((e) => e.jobId).sort()).toEqual(decisions.map((e) => e.jobId).sort());
      // restriction changes are delivered once each too
      const changes = audit.filter((e) => e.kind === 'restriction').map((e) => e.jobId);
      expect(changes.length).toBeGreaterThan(0);
      expect(
        audit
          .filter((e) => e.kind === 'execution' && e.data.kind === 'restrict')
          .map((e) => e.jobId)
          .sort(),
      ).toEqual([...changes].sort());
      const filled = executions.filter(
        (e) => Array.isArray(e.data.fills) && (e.data.fills as unknown[]).length > 0,
      );
      expect(filled.length).toBeGreaterThan(0);
      const ks = keyspace(s.prefix);
      const ours = (await redis.xrange(ks.stream, '-', '+')).filter(([, f]) => f[1]?.includes('"id":"exec-'));
      expect(ours.length).toBe(filled.reduce((n, e) => n + (e.data.fills as unknown[]).length, 0));
    } finally {
      await s.close();
    }
  });
});
