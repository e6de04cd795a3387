/**
 * The evaluator under faults, against a real Redis: a model whose scoring throws (the rules still decide,
 * visibly), a restriction under a scoring outage.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { startWorker } from '../../src/service/runtime.js';
import type { AuditEntry } from '../../src/service/state/audit.js';
import { connect } from '../helpers/redis.js';
import { deposit, fill, instrument, mark, T0 } from './events-fixtures.js';
import { makeHarness, silent } from './harness.js';
import { faultyLoader, type Kit, runnerKit, type ScorerFault } from './runner-kit.js';
import { allAudit, evaluatedToTail } from './settle.js';
import { eventually } from './wait.js';

const MIN = 60_000; // ms
const redis = connect();
afterAll(() => {
  redis.disconnect();
});

/**
 * doomed: 20 long at 100 on 150 of collateral; at the 90 mark its equity (-50) is below MM. steady: 1 long
 * on 10,000, scored at every mark.
 */
const doomedHistory = [
  instrument(),
  mark(100, T0 + 1),
  deposit('doomed', 150, T0 + 2),
  fill('doomed', 'buy', 20, 100, T0 + 3),
  deposit('steady', 10_000, T0 + 2),
  fill('steady', 'buy', 1, 100, T0 + 3),
  mark(90, T0 + MIN),
];

describe('a model whose scoring throws', () => {
  it('does not stop liquidation: rules only, counted, shown on /readyz until scoring works again', async () => {
    const fault: ScorerFault = { throwing: 'no score worker is running' };
    const h = await makeHarness('svc-score-fault', { loader: faultyLoader(fault) });
    const worker = await startWorker(
      { ...h.config, PREEMPT_METRICS_PORT: 0, HOST: '127.0.0.1' },
      { log: silent, model: h.model, metrics: h.metrics, tuning: { blockMs: 100 } },
    );
    const ops = `http://127.0.0.1:${worker.ops?.port}`;
    const post = async (body: unknown[]) => {
      const res = await h.call('POST', '/v1/events', { key: h.keys['events:write'], body });
      expect(res.status).toBe(200);
    };
    try {
      expect(h.model.status().mode).toBe('model');
      await post(doomedHistory);
      const decisions = await eventually(
        async () => (await allAudit(redis, h.prefix)).filter((e) => e.kind === 'decision'),
        (d: AuditEntry[]) => d.some((e) => e.jobId === 'liquidate-doomed-1'),
        'the liquidation decision',
      );
      expect(decisions.find((e) => e.jobId === 'liquidate-doomed-1')?.data).toMatchObject({
        decision: { action: 'LIQUIDATE', rule: 'equity-below-mm', pd: null },
        modelVersion: null,
      });

      const notReady = await fetch(`${ops}/readyz`);
      expect(notReady.status).toBe(503);
      const body = (await notReady.json()) as {
        evaluator: { healthy: boolean; shards: { scoring: string; scoreError?: { message: string } }[] };
      };
      expect(body.evaluator.healthy).toBe(false);
      expect(body.evaluator.shards[0]).toMatchObject({
        scoring: 'rules-only',
        scoreError: { message: 'no score worker is running' },
      });
      const metrics = await (await fetch(`${ops}/metrics`)).text();
      expect(metrics).toMatch(/preempt_score_failures_total\{source="evaluator",stage="score"\} [1-9]/);
      expect(metrics).toMatch(/preempt_evaluation_rules_only\{shard="0"\} 1\n/);

      // scoring works again: the next mark is scored (steady holds a position), the shard is ready again
      fault.throwing = null;
      await post([mark(89, T0 + 2 * MIN)]);
      await eventually(
        async () => (await fetch(`${ops}/readyz`)).status,
        (s) => s === 200,
        'the worker to be ready again',
      );
      expect(await (await fetch(`${ops}/metrics`)).text()).toMatch(
        /preempt_evaluation_rules_only\{shard="0"\} 0\n/,
      );
    } finally {
      await worker.close();
      await h.close();
    }
  });
});

describe('a restriction while scoring fails', () => {
  let k: Kit | undefined;
  afterAll(() => k?.close());

  it('holds (no usable pd is not a cleared signal) until reduceOnlyHoldMs after it was last flagged', async () => {
    const HOLD = 5 * MIN; // reduceOnlyHoldMs
    const fault: ScorerFault = { throwing: null };
    k = await runnerKit('svc-restrict-fault', {
      loader: faultyLoader(fault),
      policy: { reduceOnlyHoldMs: HOLD },
    });
    const kit = k;
    const runner = kit.runner('c1');
    await runner.start();
    const post = async (events: unknown[]) => {
      await kit.append(events);
      await evaluatedToTail(kit.admin, kit.prefix, 1);
    };
    // risky enters the reduce tier at the 88 mark (test model: pd from margin ratio)
    await post([
      instrument(),
      mark(100, T0 + 1),
      deposit('risky', 300, T0 + 2),
      fill('risky', 'buy', 20, 100, T0 + 3),
      mark(95, T0 + MIN),
      mark(90, T0 + 2 * MIN),
      mark(88, T0 + 3 * MIN),
    ]);
    expect(await kit.jobIds('restrict')).toEqual(['restrict-risky-1']);

    fault.throwing = 'score worker exited';
    await post([mark(88, T0 + 4 * MIN)]);
    expect(runner.status().scoring).toBe('rules-only');
    expect(await kit.jobIds('restrict')).toEqual(['restrict-risky-1']);
    expect(await kit.store.get('risky')).toMatchObject({ pd: null, reduceOnly: true });

    // still no pd when the hold has lapsed: lifted, as for an account that is no longer scored
    await post([mark(88, T0 + 3 * MIN + HOLD)]);
    expect(await kit.jobIds('restrict')).toEqual(['restrict-risky-1', 'restrict-risky-2']);
    const lift = await kit.producer.queues.restrict.getJob('restrict-risky-2');
    expect(lift?.data).toMatchObject({ reduceOnly: false, reason: 'hold-elapsed' });

    fault.throwing = null;
    await post([mark(88, T0 + 4 * MIN + HOLD)]);
    expect(runner.status()).toMatchObject({ scoring: 'model' });
    expect(runner.status().scoreError).toBeUndefined();
    const again = await kit.producer.queues.restrict.getJob('restrict-risky-3');
    expect(again?.data).toMatchObject({ reduceOnly: true, reason: 'pd-reduce-tier' });
  });
});
