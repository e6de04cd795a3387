/**
 * The evaluator under faults, against a real Redis: a model whose scoring throws (the rules still decide,
 * visibly), a restriction under a scoring outage, an entry that throws while being applied (once, or
 * every time).
 */
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { createMetrics } from '../../src/service/metrics.js';
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

describe('an entry that throws while being applied', () => {
  let k: Kit | undefined;
  afterEach(async () => {
    await k?.close();
    k = undefined;
  });

  it('once: the state is rebuilt and every entry of its batch applied once, with its effects', async () => {
    k = await runnerKit('svc-entry-throws');
    const kit = k;
    // a fault after the 7th entry was applied to the state, before its evaluation and effects: the state
    // is half-changed (B's fill is in the book), the rest of the batch not yet applied
    const metrics = createMetrics();
    const counter = metrics.eventsApplied;
    const inc = counter.inc.bind(counter) as (labels: { shard: string }) => void;
    let applied = 0;
    counter.inc = ((labels: { shard: string }) => {
      if (++applied === 7) throw new Error('fault after the 7th entry');
      inc(labels);
    }) as typeof counter.inc;
    const runner = kit.runner('c1', { metrics });
    await runner.start();
    await kit.append([
      instrument(),
      mark(100, T0 + 1),
      deposit('A', 1000, T0 + 2),
      fill('A', 'buy', 10, 100, T0 + 3),
      mark(99, T0 + MIN),
      deposit('B', 500, T0 + MIN + 1),
      fill('B', 'buy', 20, 100, T0 + MIN + 2),
      mark(98, T0 + 2 * MIN),
    ]);
    await evaluatedToTail(kit.admin, kit.prefix, 1);
    // the step that wrote the status clears the failure once it has returned: wait for that, not only the status
    const text = await eventually(
      () => metrics.registry.metrics(),
      (t) => /preempt_evaluation_failing_steps\{shard="0"\} 0\n/.test(t),
      'the failing-steps gauge back at 0',
    );
    expect(text).toMatch(/preempt_evaluation_failures_total\{shard="0",stage="apply"\} 1\n/);
    expect(runner.status().failure).toBeUndefined();
    // applied once each: B's fill is not in the book twice
    const book = runner.state.pipeline.book;
    expect(book.snapshot('A')?.positions.map((p) => p.qty)).toEqual([10]);
    expect(book.snapshot('B')?.positions.map((p) => p.qty)).toEqual([20]);
    // the entries after it were applied with their effects: B was evaluated at the 98 mark
    expect((await kit.store.get('B'))?.asOf).toBe(T0 + 2 * MIN);
    expect(((await kit.admin.xpending(kit.keys.stream, kit.keys.shardGroup(0))) as [number])[0]).toBe(0);

    await kit.append([mark(97, T0 + 3 * MIN)]);
    await evaluatedToTail(kit.admin, kit.prefix, 1);
    expect((await kit.store.get('B'))?.asOf).toBe(T0 + 3 * MIN);
  });

  it('every time: the shard holds at that entry, visibly, with the results of the entries before it written', async () => {
    k = await runnerKit('svc-entry-poison');
    const kit = k;
    const supervisor = await kit.supervisor();
    await kit.append([
      instrument(),
      mark(100, T0 + 1),
      deposit('doomed', 150, T0 + 2),
      fill('doomed', 'buy', 20, 100, T0 + 3),
    ]);
    await evaluatedToTail(kit.admin, kit.prefix, 1);
    // one batch: a mark that sends doomed below MM, an entry that cannot be read, a deposit
    const tx = await kit.admin
      .multi()
      .xadd(kit.keys.stream, '*', 'e', JSON.stringify(mark(90, T0 + MIN)))
      .xadd(kit.keys.stream, '*', 'e', '{"type":"mark","ts":')
      .xadd(kit.keys.stream, '*', 'e', JSON.stringify(deposit('late', 100, T0 + MIN + 1)))
      .exec();
    const [markId, poisonId] = (tx ?? []).map(([, id]) => id as string);
    const status = await eventually(
      () => supervisor.status()[0],
      (s) => (s?.failure?.count ?? 0) >= 3,
      'the entry to fail three times',
    );
    expect(status?.failure).toMatchObject({
      entry: poisonId,
      message: expect.stringContaining(`${poisonId}`),
    });
    expect(status?.lastEntryId).toBe(markId);
    expect(supervisor.healthy(30_000)).toBe(false);
    // the mark before it was decided and its job enqueued; the deposit after it is not skipped past it
    expect(await kit.jobIds('liquidate')).toEqual(['liquidate-doomed-1']);
    expect((await kit.store.get('doomed'))?.asOf).toBe(T0 + MIN);
    expect(await kit.store.get('late')).toBeUndefined();
    const text = await kit.metricsText();
    expect(text).toMatch(/preempt_evaluation_failures_total\{shard="0",stage="(apply|rebuild)"\} [1-9]/);
    expect(text).toMatch(/preempt_evaluation_failing_steps\{shard="0"\} ([3-9]|\d\d+)\n/);
  });
});
