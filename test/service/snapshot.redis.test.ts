/**
 * Shard snapshots against a real Redis: a shard that takes over restores the previous owner's snapshot and
 * replays only the entries after it, and ends in the same Redis state (views, at-risk set, restriction
 * records, market inputs, jobs, audit, lag) as a run that never wrote one; so does a restart after the log
 * was trimmed below the snapshot. An incompatible snapshot is refused: a full replay when the log is whole,
 * a visible failure (status, readiness 503 with the reason, no entry applied) when it was trimmed.
 * Concurrent trimmers never trim past the oldest snapshot, nor move the trim point back. A stop during a
 * restore abandons it at its next yield, applying and writing nothing.
 */
import { gzipSync } from 'node:zlib';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { resolvePolicyConfig } from '../../src/margin/index.js';
import type { RunnerDeps } from '../../src/service/evaluator/runner.js';
import {
  type DecodeProgress,
  decodeSnapshot,
  policyHash,
  serialiseState,
} from '../../src/service/evaluator/snapshot.js';
import { serveOps } from '../../src/service/ops-server.js';
import { compareIds } from '../../src/service/state/event-log.js';
import {
  logTrimPoint,
  readSnapshot,
  readSnapshotMeta,
  safeTrimPoint,
  trimLogBelow,
  writeSnapshot,
} from '../../src/service/state/snapshots.js';
import { crashHistory } from './crash-history.js';
import { deposit, fill, mark, T0 } from './events-fixtures.js';
import { type Kit, runnerKit } from './runner-kit.js';
import { ALL_JOB_STATES, allAudit, evaluatedToTail } from './settle.js';
import { eventually } from './wait.js';

const MIN = 60_000; // ms
const history = crashHistory(40);
/** the crash's first part (to the 95 mark), then the rest and a recovery with new positions */
const part1 = history.slice(0, 90);
const part2 = [
  ...history.slice(90),
  ...['acct-01', 'acct-05', 'acct-30'].map((a, i) => fill(a, 'buy', 2, 88, T0 + 12 * MIN + i)),
  deposit('late', 500, T0 + 12 * MIN + 10),
  fill('late', 'buy', 10, 88, T0 + 12 * MIN + 11),
  mark(86, T0 + 13 * MIN),
  mark(89, T0 + 14 * MIN),
];
const HASH = policyHash(resolvePolicyConfig({}));

let kits: Kit[] = [];
afterEach(async () => {
  for (const k of kits) await k.close();
  kits = [];
});

async function newKit(label: string): Promise<Kit> {
  const k = await runnerKit(label);
  kits.push(k);
  return k;
}

/** A started shard-0 runner holding the lease under `value` (read in small batches). */
async function owner(k: Kit, value: string, extra: Partial<RunnerDeps> = {}, failing = false) {
  const lease = k.keys.shardLease(0);
  await k.admin.set(lease, value);
  const r = k.runner(value, {
    leaseValue: value,
    fence: async () => (await k.admin.get(lease)) === value,
    batch: 7,
    ...extra,
  });
  // (start resolves once rebuilt: not when the rebuild fails)
  const started = r.start();
  if (!failing) await started;
  return r;
}

/** Everything the evaluator writes, without wall-clock times and stream ids (which differ between runs). */
async function dump(k: Kit) {
  const a = k.admin;
  const parse = (h: Record<string, string>) =>
    Object.fromEntries(
      Object.entries(h)
        .sort(([x], [y]) => (x < y ? -1 : 1))
        .map(([key, v]) => {
          const { evaluatedAt: _, ...rest } = JSON.parse(v) as Record<string, unknown>;
          return [key, rest];
        }),
    );
  const jobs: Record<string, unknown[]> = {};
  for (const q of ['liquidate', 'deleverage', 'restrict'] as const) {
    const list = await k.producer.queues[q].getJobs([...ALL_JOB_STATES]);
    jobs[q] = list
      .map((j) => ({ id: j.id, data: j.data }))
      .sort((x, y) => (String(x.id) < String(y.id) ? -1 : 1));
  }
  const groups = (await a.xinfo('GROUPS', k.keys.stream)) as unknown[][];
  const g = new Map<string, unknown>();
  for (let i = 0; i + 1 < (groups[0]?.length ?? 0); i += 2) g.set(String(groups[0]![i]), groups[0]![i + 1]);
  return {
    risk: parse(await a.hgetall(k.keys.risk(0))),
    atRisk: await a.zrange(k.keys.atRisk(0), 0, -1, 'WITHSCORES'),
    restrictions: parse(await a.hgetall(k.keys.restrictions(0))),
    market: parse(await a.hgetall(k.keys.market)),
    jobs,
    audit: (await allAudit(a, k.prefix)).map(({ id: _, ...e }) => e),
    entriesRead: g.get('entries-read'),
    lag: g.get('lag'),
  };
}

/**
 * The scenario: a first owner evaluates part 1 (writing snapshots every `every` entries, 0 = none), stops;
 * part 2 arrives while no evaluator runs (optionally after trimming the log); a second owner takes over.
 */
async function scenario(
  label: string,
  every: number,
  opts: { trim?: boolean; tamper?: boolean; otherPolicy?: boolean } = {},
) {
  const k = await newKit(label);
  const first = await owner(k, 'first#1', { snapshotEveryEntries: every });
  await k.append(part1);
  await evaluatedToTail(k.admin, k.prefix, 1);
  await first.stop();
  let trimmed = { deleted: 0, point: '0-0' };
  if (opts.trim) {
    const safe = await safeTrimPoint(k.admin, k.keys, 1, HASH);
    if (safe.point === null) throw new Error(safe.reason);
    trimmed = await trimLogBelow(k.admin, k.keys, safe.point, 0);
  }
  if (opts.tamper) {
    const meta = JSON.parse((await k.admin.hget(k.keys.shardSnapshot(0), 'meta')) as string);
    await k.admin.hset(k.keys.shardSnapshot(0), 'meta', JSON.stringify({ ...meta, version: 999 }));
  }
  if (opts.otherPolicy) {
    const meta = JSON.parse((await k.admin.hget(k.keys.shardSnapshot(0), 'meta')) as string);
    await k.admin.hset(k.keys.shardSnapshot(0), 'meta', JSON.stringify({ ...meta, policyHash: 'another' }));
  }
  const snapshot = await readSnapshotMeta(k.admin, k.keys, 0);
  const committedAtStop = first.status().committedEntryId;
  await k.append(part2);
  const second = await owner(k, 'second#1', { snapshotEveryEntries: every }, opts.trim && opts.tamper);
  return { k, second, snapshot, committedAtStop, trimmed };
}

async function baseline(): Promise<Awaited<ReturnType<typeof dump>>> {
  const { k, second } = await scenario('snap-base', 0);
  await evaluatedToTail(k.admin, k.prefix, 1);
  await second.stop();
  expect(await k.admin.exists(k.keys.shardSnapshot(0))).toBe(0);
  expect(await k.metricsText()).toMatch(
    /preempt_evaluator_rebuilds_total\{shard="0",source="full-replay"\} 1/,
  );
  return dump(k);
}

describe('a takeover from a snapshot', () => {
  it('replays only the entries after it and ends as a run without snapshots', async () => {
    const expected = await baseline();
    // the crash decided something: jobs, restrictions and views to compare
    expect(expected.jobs.restrict?.length).toBeGreaterThan(0);
    expect(expected.jobs.deleverage!.length + expected.jobs.liquidate!.length).toBeGreaterThan(0);
    expect(Object.keys(expected.risk).length).toBeGreaterThan(40);

    const { k, second, snapshot, committedAtStop } = await scenario('snap-take', 30);
    await evaluatedToTail(k.admin, k.prefix, 1);
    await second.stop();
    // the snapshot it restored was behind the committed entry: entries after it were replayed
    expect(snapshot).toBeDefined();
    expect(compareIds(snapshot!.entry, committedAtStop)).toBeLessThan(0);
    expect(await k.metricsText()).toMatch(
      /preempt_evaluator_rebuilds_total\{shard="0",source="snapshot"\} 1/,
    );
    expect(await dump(k)).toEqual(expected);
    // the second owner wrote snapshots of its own, at its committed entries
    const latest = await readSnapshotMeta(k.admin, k.keys, 0);
    expect(compareIds(latest!.entry, snapshot!.entry)).toBeGreaterThan(0);
    expect(latest!.bytes).toBeGreaterThan(0);
  }, 60_000);

  it('after the log was trimmed below the snapshot, still ends as a run without snapshots', async () => {
    const expected = await baseline();
    const { k, second, snapshot, trimmed } = await scenario('snap-trim', 30, { trim: true });
    expect(trimmed.deleted).toBeGreaterThan(0);
    expect(trimmed.point).toBe(snapshot!.entry);
    const first = (await k.admin.xrange(k.keys.stream, '-', '+', 'COUNT', 1))[0]?.[0];
    expect(first).toBe(snapshot!.entry);
    await evaluatedToTail(k.admin, k.prefix, 1);
    await second.stop();
    expect(await k.metricsText()).toMatch(
      /preempt_evaluator_rebuilds_total\{shard="0",source="snapshot"\} 1/,
    );
    // the same state, and the lag counts the trimmed entries as read
    expect(await dump(k)).toEqual(expected);
  }, 60_000);
});

describe('an incompatible snapshot', () => {
  it('is refused for a full replay while the log is whole', async () => {
    const expected = await baseline();
    const { k, second } = await scenario('snap-refuse', 30, { tamper: true });
    await evaluatedToTail(k.admin, k.prefix, 1);
    await second.stop();
    const metrics = await k.metricsText();
    expect(metrics).toMatch(/source="full-replay"\} 1/);
    expect(metrics).not.toMatch(/source="snapshot"/);
    expect(await dump(k)).toEqual(expected);
  }, 60_000);

  it('taken under another policy config: a full replay while the log is whole, restored once it is trimmed', async () => {
    const expected = await baseline();
    const whole = await scenario('snap-policy-whole', 30, { otherPolicy: true });
    await evaluatedToTail(whole.k.admin, whole.k.prefix, 1);
    await whole.second.stop();
    expect(await whole.k.metricsText()).toMatch(/source="full-replay"\} 1/);
    expect(await dump(whole.k)).toEqual(expected);

    // trimmed: no replay under the new policy is possible, so the state is restored and the (here equal)
    // policy applies from there on, where refusing would leave the shard unable to start
    const trimmed = await scenario('snap-policy-trim', 30, { otherPolicy: true, trim: true });
    expect(trimmed.trimmed.deleted).toBeGreaterThan(0);
    await evaluatedToTail(trimmed.k.admin, trimmed.k.prefix, 1);
    await trimmed.second.stop();
    expect(await trimmed.k.metricsText()).toMatch(/source="snapshot"\} 1/);
    expect(trimmed.second.status().failure).toBeUndefined();
    expect(await dump(trimmed.k)).toEqual(expected);
  }, 90_000);

  it('fails visibly, applying nothing, when the log was trimmed past it', async () => {
    const { k, second } = await scenario('snap-fail', 30, { trim: true, tamper: true });
    await eventually(
      () => second.status().failure,
      (f) => f?.stage === 'rebuild',
      'the rebuild to fail',
    );
    expect(second.status().failure?.message).toMatch(/trimmed below .* no usable snapshot/);
    expect(second.status().lastEntryId).toBe('0-0');
    expect(await k.store.get('late')).toBeUndefined();
    expect(await k.metricsText()).toMatch(/source="failed"\}/);
    await second.stop();
    // through a supervisor: readiness says why
    await k.admin.del(k.keys.shardLease(0));
    const sup = await k.supervisor();
    await eventually(
      () => sup.status()[0]?.failure,
      (f) => f !== undefined,
      'the supervised shard to fail',
    );
    const ops = await serveOps(0, '127.0.0.1', k.metrics, k.redis, sup);
    try {
      const res = await fetch(`http://127.0.0.1:${ops.port}/readyz`);
      expect(res.status).toBe(503);
      expect(await res.text()).toMatch(/the log was trimmed below/);
    } finally {
      await ops.close();
    }
  }, 60_000);
});

describe('concurrent trimmers', () => {
  it('trim below the oldest snapshot only, once, never back', async () => {
    const k = await newKit('snap-trimmers');
    const first = await owner(k, 'first#1', { snapshotEveryEntries: 30 });
    await k.append(part1);
    await evaluatedToTail(k.admin, k.prefix, 1);
    const snap = await readSnapshotMeta(k.admin, k.keys, 0);
    const ids = (await k.admin.xrange(k.keys.stream, '-', '+')).map(([id]) => id);
    // retention: entries younger than an hour are kept whatever the snapshots
    expect((await trimLogBelow(k.admin, k.keys, snap!.entry, 3_600_000)).deleted).toBe(0);
    expect(await logTrimPoint(k.admin, k.keys)).toBe('0-0');
    // ten trimmers at once, some with an older (stale) point
    const older = ids[5]!;
    const results = await Promise.all(
      Array.from({ length: 10 }, async (_, i) => {
        const safe = await safeTrimPoint(k.redis, k.keys, 1, HASH);
        if (safe.point === null) throw new Error(safe.reason);
        return trimLogBelow(k.redis, k.keys, i % 3 === 0 ? older : safe.point, 0);
      }),
    );
    const deleted = results.reduce((n, r) => n + r.deleted, 0);
    expect(await logTrimPoint(k.admin, k.keys)).toBe(snap!.entry);
    expect(deleted).toBe(ids.indexOf(snap!.entry));
    expect(await k.admin.xlen(k.keys.stream)).toBe(ids.length - ids.indexOf(snap!.entry));
    // an older point later changes nothing
    expect(await trimLogBelow(k.admin, k.keys, older, 0)).toEqual({ deleted: 0, point: snap!.entry });
    // and the shard still restarts from its snapshot
    await first.stop();
    await k.append(part2);
    await owner(k, 'second#1', { snapshotEveryEntries: 30 });
    await evaluatedToTail(k.admin, k.prefix, 1);
    expect(await k.store.get('late')).toMatchObject({ equity: expect.any(Number) });
  }, 60_000);
});

describe('with snapshots off (the default)', () => {
  it('a snapshot left in Redis is not restored while the log is whole: the whole log is replayed', async () => {
    const k = await newKit('snap-off');
    const first = await owner(k, 'first#1', { snapshotEveryEntries: 30 });
    await k.append(part1);
    await evaluatedToTail(k.admin, k.prefix, 1);
    await first.stop();
    expect(await readSnapshotMeta(k.admin, k.keys, 0)).toBeDefined();
    await k.append(part2);
    const second = await owner(k, 'second#1', { snapshotEveryEntries: 0 });
    await evaluatedToTail(k.admin, k.prefix, 1);
    await second.stop();
    const metrics = await k.metricsText();
    expect(metrics).toMatch(/source="full-replay"\} 1/);
    expect(metrics).not.toMatch(/source="snapshot"/);
  }, 60_000);
});

describe('the end of a rebuild', () => {
  it('writes the view of every account the shard owns, on both paths (full replay and snapshot)', async () => {
    for (const every of [0, 30]) {
      const k = await newKit(`snap-views-${every}`);
      const first = await owner(k, 'first#1', { snapshotEveryEntries: every });
      await k.append(part1);
      await evaluatedToTail(k.admin, k.prefix, 1);
      await first.stop();
      const before = await k.admin.hkeys(k.keys.risk(0));
      expect(before.length).toBeGreaterThanOrEqual(40);
      // the views are gone (as for accounts another shard owned before a change of shard count)
      await k.admin.del(k.keys.risk(0));
      await owner(k, 'second#1', { snapshotEveryEntries: every });
      // no new entry: only the rebuild writes
      expect((await k.admin.hkeys(k.keys.risk(0))).sort(), `snapshotEveryEntries ${every}`).toEqual(
        before.sort(),
      );
      expect(await k.metricsText()).toMatch(every > 0 ? /source="snapshot"\} 1/ : /source="full-replay"\} 1/);
    }
  }, 90_000);
});

describe('a snapshot that cannot be written', () => {
  it('is not sent above the size cap, and is retried after a backoff in entries, not at every step', async () => {
    const k = await newKit('snap-cap');
    const every = 10;
    const r = await owner(k, 'first#1', { snapshotEveryEntries: every, snapshotMaxBytes: 100 });
    await k.append(part1);
    await evaluatedToTail(k.admin, k.prefix, 1);
    const steps = r.status();
    await r.stop();
    expect(await k.admin.exists(k.keys.shardSnapshot(0))).toBe(0);
    const text = await k.metricsText();
    const failures = Number(
      /preempt_snapshot_write_failures_total\{shard="0",reason="too-large"\} (\d+)/.exec(text)?.[1] ?? 'NaN',
    );
    // 90 entries in batches of 7 (13 committed steps, a retry at each without a backoff): attempts at
    // the first step, then after 10, 20 and 40 more entries
    expect(failures).toBeGreaterThanOrEqual(3);
    expect(failures).toBeLessThanOrEqual(5);
    expect(text).toMatch(new RegExp(`preempt_snapshot_consecutive_failures\\{shard="0"\\} ${failures}`));
    expect(steps.lastEntryId).not.toBe('0-0');
  }, 60_000);
});

/** the decode's yield at which the stop is asked for */
const STOP_AT = 3;

/**
 * A second owner stopped at the 3rd yield of restoring the first owner's snapshot (framed again in chunks
 * of one element, so that the restore yields many times), optionally after the log was trimmed below the
 * snapshot's entry (the snapshot is then the only way to rebuild). What it did, logged and wrote.
 */
async function stopDuringRestore(label: string, opts: { trim?: boolean } = {}) {
  const k = await newKit(label);
  const first = await owner(k, 'first#1', { snapshotEveryEntries: 30 });
  await k.append(part1);
  await evaluatedToTail(k.admin, k.prefix, 1);
  await first.stop();
  // the first owner's snapshot framed again in chunks of one element (its state unchanged): restoring it
  // takes a yield per account, id, epoch, ... (a large state takes as many with chunks of 50,000)
  const stored = await readSnapshot(k.admin, k.keys, 0);
  if (!stored?.meta || !stored.data) throw new Error('the first owner wrote no snapshot');
  const state = await decodeSnapshot(stored.meta, stored.data, resolvePolicyConfig({}));
  const raw = await serialiseState(state.saveState(), 1);
  const data = gzipSync(raw);
  const meta = { ...stored.meta, rawBytes: raw.length, bytes: data.length };
  expect(await writeSnapshot(k.admin, k.keys, 0, 'first#1', meta, data)).toBe(true);
  if (opts.trim) {
    // the entries before the snapshot's gone: a rebuild cannot do without it
    const trimmed = await trimLogBelow(k.admin, k.keys, meta.entry, 0);
    expect(trimmed.deleted).toBeGreaterThan(0);
    expect(trimmed.point).toBe(meta.entry);
    expect(await logTrimPoint(k.admin, k.keys)).toBe(meta.entry);
  }
  // the views deleted: a rebuild that got to its end would write every one again
  await k.admin.del(k.keys.risk(0));
  const written = async () => ({
    ...(await dump(k)),
    status: await k.admin.hgetall(k.keys.shardStatus(0)),
    snapshot: await k.admin.hgetallBuffer(k.keys.shardSnapshot(0)),
  });
  const before = await written();
  expect(before.status.lastEntryId).toBe(await k.tail());

  const records: Record<string, unknown>[] = [];
  const log = pino({ level: 'info' }, { write: (line: string) => records.push(JSON.parse(line)) });
  const seen: DecodeProgress[] = [];
  let stopped: Promise<void> | undefined;
  const lease = k.keys.shardLease(0);
  await k.admin.set(lease, 'second#1');
  const second = k.runner('second#1', {
    leaseValue: 'second#1',
    fence: async () => (await k.admin.get(lease)) === 'second#1',
    batch: 7,
    snapshotEveryEntries: 30,
    log,
    onRestoreYield: (p) => {
      seen.push(p);
      if (p.yields === STOP_AT) stopped = second.stop();
    },
  });
  // resolves once stopped, as for a stop during the replay of the log
  await second.start();
  expect(stopped).toBeDefined();
  await stopped;
  return { k, second, seen, records, before, after: await written(), metrics: await k.metricsText() };
}

describe('a stop during a restore', () => {
  it('abandons the decode at its next yield: nothing applied, nothing written, and start returns', async () => {
    const { second, seen, records, before, after, metrics } = await stopDuringRestore('snap-stop');
    // the decode went no further than the yield at which the stop came: a few chunks of many
    expect(seen.map((p) => p.yields)).toEqual([1, 2, 3]);
    const last = seen[seen.length - 1]!;
    expect(last.chunksTotal).toBeGreaterThan(10 * STOP_AT);
    expect(last.chunks).toBe(STOP_AT - 1);
    const abandoned = records.filter((r) => /restore abandoned/.test(String(r.msg)));
    expect(abandoned).toHaveLength(1);
    expect(abandoned[0]).toMatchObject({ level: 30, chunks: last.chunks, chunksTotal: last.chunksTotal });
    // nothing applied
    expect(second.status().lastEntryId).toBe('0-0');
    expect([...second.state.pipeline.accounts()]).toEqual([]);
    expect(second.status()).toMatchObject({ leaseLost: false, steps: 0 });
    expect(second.status().failure).toBeUndefined();
    // nothing written: views, status, snapshot, restrictions, market, jobs, audit, the group's position
    expect(after).toEqual(before);
    expect(metrics).not.toMatch(/preempt_evaluator_rebuilds_total\{shard="0",source="snapshot"\}/);
    expect(metrics).not.toMatch(/preempt_snapshot_duration_seconds_count\{shard="0",op="restore"\}/);
  }, 60_000);

  it('after the log was trimmed below the snapshot, is a stop, not a failed rebuild', async () => {
    const { second, seen, records, before, after, metrics } = await stopDuringRestore('snap-stop-trim', {
      trim: true,
    });
    expect(seen.map((p) => p.yields)).toEqual([1, 2, 3]);
    const abandoned = records.filter((r) => /restore abandoned/.test(String(r.msg)));
    expect(abandoned).toHaveLength(1);
    // no failed rebuild: not counted, not logged as an error, not in the status
    expect(metrics).not.toMatch(/preempt_evaluator_rebuilds_total\{shard="0",source="failed"\}/);
    expect(metrics).not.toMatch(/preempt_evaluation_failures_total\{shard="0",stage="rebuild"\}/);
    expect(records.filter((r) => Number(r.level) >= 40)).toEqual([]);
    expect(second.status().failure).toBeUndefined();
    // nothing applied, nothing written
    expect(second.status().lastEntryId).toBe('0-0');
    expect([...second.state.pipeline.accounts()]).toEqual([]);
    expect(second.status()).toMatchObject({ leaseLost: false, steps: 0 });
    expect(after).toEqual(before);
    expect(metrics).not.toMatch(/preempt_evaluator_rebuilds_total\{shard="0",source="snapshot"\}/);
  }, 60_000);
});
