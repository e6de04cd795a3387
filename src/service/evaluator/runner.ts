/**
 * The evaluation loop of one shard: read the event log by entry id after the last entry it applied (so
 * its state is always the log up to that entry: nothing another reader took can be missing), apply each
 * entry exactly once to the in-memory state, re-evaluate on every mark the shard's accounts holding that
 * instrument (features -> pd -> policy), then write the results (risk views, at-risk set, market inputs),
 * enqueue jobs for LIQUIDATE / REDUCE and for each change of an account's reduce-only restriction, and
 * commit: record in the shard's consumer group that every entry up to there is done (the group keeps only
 * that position, and so reports the lag). One step at a time (never overlapping); results that fail to
 * write stay in an outbox and are retried before anything new is read. On start (or when taking a shard
 * over) it rebuilds its state by replaying the log up to the committed entry without effects, then goes
 * on from there with effects: entries after it are re-processed with their effects (job ids, decision
 * epochs and restriction versions make that safe, also while a previous owner is finishing its step).
 * Before each read and each write of results it checks that it still holds the shard's lease (`fence`):
 * a runner that lost it stops at once and leaves its step to the new owner. Its views and the shard's status
 * are each written in one script with a check of the lease value (`leaseValue`), so a runner paused between
 * that check and its write never replaces the new owner's: the write is refused and the runner stops the same
 * way.
 *
 * The restriction follows the committed decisions (`Decision.reduceOnly`); a flat account is no longer
 * scored, so its lift comes from a sweep in event time (`ShardState.sweep`, after every applied entry):
 * deterministic, so a replay reproduces the same changes with the same versions and job ids. After the
 * rebuild, the replayed restrictions are reconciled with the stored records (a policy change since may
 * have made them differ): the venue is told the replay's state under a newer version.
 *
 * Snapshots: every `snapshotEveryEntries` entries, at a committed position (outbox empty, batch finished),
 * the runner writes its state (`snapshot.ts`) under its lease. A rebuild starts from the shard's snapshot
 * when it is usable (same format, shard count, policy and parameters; at or before the committed entry;
 * nothing after it trimmed from the log) and replays only the entries after it; otherwise from the whole
 * log, unless the log was trimmed (`logTrimmed`): then it fails, visibly (status, readiness, log), rather
 * than rebuild from a partial log. A stop during the restore abandons it at the decode's next yield: nothing
 * applied, nothing written.
 */
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { FEATURE_COUNT } from '../../features/schema.js';
import type { PolicyConfig } from '../../margin/index.js';
import type { FeatureContribution } from '../../model/types.js';
import type { ServiceMetrics } from '../metrics.js';
import type { ModelHolder } from '../model/holder.js';
import { jobIdFor, jobIdOfEvent } from '../queue/job.js';
import type { ActionProducer } from '../queue/producer.js';
import type { AuditLog } from '../state/audit.js';
import {
  commitPosition,
  compareIds,
  decodeEntry,
  pagesUpTo,
  pruneConsumers,
  readAfter,
  shardPosition,
} from '../state/event-log.js';
import type { Keyspace } from '../state/keys.js';
import type { RestrictionStore } from '../state/restrictions.js';
import type { RiskStore } from '../state/risk-store.js';
import { logTrimPoint, readSnapshot, writeSnapshot } from '../state/snapshots.js';
import { LeaseLostError, Outbox } from './outbox.js';
import { type Evaluation, type RestrictionChange, ShardState } from './shard-state.js';
import {
  atOrBefore,
  type DecodeProgress,
  DecodeStoppedError,
  decodeSnapshot,
  encodeSnapshot,
  policyHash,
  refusal,
} from './snapshot.js';
import { executionJob, restrictionRecord, restrictJob, riskView } from './views.js';

export interface RunnerDeps {
  /** dedicated to the blocking reads ('wait' role) */
  reader: Redis;
  /** writes ('fail-fast': a failed write is retried by the loop) */
  redis: Redis;
  keys: Keyspace;
  shard: number;
  shards: number;
  /** names this runner in the shard's status */
  consumer: string;
  batch: number;
  policy: PolicyConfig;
  model: ModelHolder;
  producer: ActionProducer;
  store: RiskStore;
  restrictions: RestrictionStore;
  audit: AuditLog;
  metrics: ServiceMetrics;
  log: Logger;
  /** ms a read blocks waiting for entries (bounds shutdown latency) */
  blockMs?: number;
  /** features listed per non-healthy account */
  explainTop?: number;
  /** accounts explained per evaluation (highest pd first); explaining costs a batch per account */
  explainCap?: number;
  /** whether this runner still holds the shard's lease (none: always) */
  fence?: () => Promise<boolean>;
  /**
   * the value of the shard's lease this runner was started under: views and the shard's status are written
   * only while the lease holds it, checked in the same script as the write (none: unfenced)
   */
  leaseValue?: string;
  /**
   * entries: write a state snapshot once this many were applied since the last one (0 or none: never;
   * needs `leaseValue`, the write is fenced by it)
   */
  snapshotEveryEntries?: number;
  /**
   * bytes (gzip): a snapshot larger than this is not written (logged, counted): one EVAL argument above
   * Redis's proto-max-bulk-len (512 MB) would fail and break the shared connection. Default 256 MiB.
   */
  snapshotMaxBytes?: number;
  /**
   * ms of event time an account event's id is remembered for, to recognise a resend
   * (PREEMPT_SHARD_ID_WINDOW_MS; none: for ever, and a shard's memory grows with every account event it applies)
   */
  idWindowMs?: number;
  /** called at every yield of a snapshot restore, with its progress (tests) */
  onRestoreYield?: (progress: Readonly<DecodeProgress>) => void;
}

export const SNAPSHOT_MAX_BYTES = 256 * 1024 * 1024;

/** A snapshot above `snapshotMaxBytes`: not sent. */
class SnapshotTooLargeError extends Error {
  readonly code = 'SNAPSHOT_TOO_LARGE';
}

/** accounts per evaluation when a rebuild writes the views of every account the shard owns */
const REBUILD_VIEW_SLICE = 5_000;

type Entry = [id: string, fields: string[]];

interface Scored {
  /** null = rules only for that row */
  pds: (number | null)[];
  version: string | null;
  explain?: (row: Float32Array, top: number) => Promise<FeatureContribution[]>;
}

export interface RunnerStatus {
  shard: number;
  consumer: string;
  lastEntryId: string;
  /** every entry up to this one is applied and its results written (recorded in Redis) */
  committedEntryId: string;
  /** stopped because another process took the shard's lease */
  leaseLost: boolean;
  /** ms from an entry's append to the end of its evaluation step (last step) */
  lagMs: number;
  /** ms (wall clock) of the last completed step */
  lastStepAt: number;
  /** ms (wall clock) of the last loop iteration, idle or not (a stuck loop stops advancing it) */
  lastLoopAt: number;
  steps: number;
  /** where the latest evaluation's pds came from: the model, or rules only (no model, or scoring failed) */
  scoring: 'model' | 'rules-only';
  /** while the latest scoring threw: its error, since when (ms, wall clock) and how many in a row */
  scoreError?: { message: string; since: number; failures: number };
  /**
   * while the loop's steps fail: the latest failure (its stage, error, the entry that threw, if one did),
   * since when (ms, wall clock) and how many steps in a row
   */
  failure?: { stage: FailureStage; message: string; entry?: string; since: number; count: number };
}

export type FailureStage = 'rebuild' | 'read' | 'apply' | 'flush';

/** The log lacks entries the shard needs, and no usable snapshot covers them. */
export class LogTrimmedError extends Error {
  readonly code = 'LOG_TRIMMED';
}

/** An entry threw while being applied (the state may be half-changed). */
class EntryError extends Error {
  constructor(
    readonly entry: string,
    cause: Error,
  ) {
    super(`entry ${entry}: ${cause.message}`, { cause });
  }
}

export class ShardRunner {
  state: ShardState;
  private lastApplied = '0-0';
  /** the shard's committed position as last read or written */
  private committed = '0-0';
  /** entries of the log up to `lastApplied` (with those before its first present entry) */
  private entriesRead = 0;
  private leaseLost = false;
  private outbox = new Outbox();
  private readonly dirty = new Set<string>();
  private stopping = false;
  private loop: Promise<void> | undefined;
  private lagMs = 0;
  private lastStepAt = 0;
  private lastLoopAt = 0;
  private steps = 0;
  private scoring: RunnerStatus['scoring'];
  private scoreError: RunnerStatus['scoreError'];
  /** the state must be (re)built from the log before going on */
  private needsRebuild = true;
  /** an entry that threw while being applied, until it is applied */
  private suspect: string | undefined;
  private failure: RunnerStatus['failure'];
  private readonly policyHash: string;
  /** the shard's latest snapshot this runner wrote or restored from: its entry and entry count */
  private snapshotAt: { entry: string; entriesRead: number } | undefined;
  /** snapshot writes that failed in a row, and the entry count before which none is tried again */
  private snapshotFailures = 0;
  private snapshotRetryAt = 0;

  constructor(private readonly d: RunnerDeps) {
    this.policyHash = policyHash(d.policy);
    this.state = this.freshState();
    this.scoring = d.model.status().mode;
    d.metrics.evalRulesOnly.set({ shard: String(d.shard) }, 0);
    d.metrics.evalFailing.set({ shard: String(d.shard) }, 0);
  }

  private get group(): string {
    return this.d.keys.shardGroup(this.d.shard);
  }

  status(): RunnerStatus {
    return {
      shard: this.d.shard,
      consumer: this.d.consumer,
      lastEntryId: this.lastApplied,
      committedEntryId: this.committed,
      leaseLost: this.leaseLost,
      lagMs: this.lagMs,
      lastStepAt: this.lastStepAt,
      lastLoopAt: this.lastLoopAt,
      steps: this.steps,
      scoring: this.scoring,
      ...(this.scoreError ? { scoreError: { ...this.scoreError } } : {}),
      ...(this.failure ? { failure: { ...this.failure } } : {}),
    };
  }

  /**
   * Rebuild from the log, then run the loop, in the background; resolves once rebuilt (or stopped). A
   * rebuild that fails starts over from an empty state, with backoff, until it succeeds or the runner is
   * stopped.
   */
  start(): Promise<void> {
    let rebuilt: () => void = () => {};
    const ready = new Promise<void>((r) => {
      rebuilt = r;
    });
    this.loop = this.run(() => rebuilt()).finally(() => rebuilt());
    return ready;
  }

  /** Finish the current step (results flushed, entries acknowledged), then stop. */
  async stop(): Promise<void> {
    this.stopping = true;
    await this.loop;
  }

  /** Forget everything applied: the next rebuild starts from an empty state. */
  private reset(): void {
    this.state = this.freshState();
    this.lastApplied = '0-0';
    this.committed = '0-0';
    this.entriesRead = 0;
    this.outbox = new Outbox();
    this.dirty.clear();
  }

  /** An empty state; it keeps what a snapshot needs only when snapshots are on (that memory grows). */
  private freshState(): ShardState {
    return new ShardState(this.d.shard, this.d.shards, this.d.policy, {
      snapshots: (this.d.snapshotEveryEntries ?? 0) > 0,
      ...(this.d.idWindowMs === undefined ? {} : { idWindowMs: this.d.idWindowMs }),
    });
  }

  /**
   * Restore the shard's snapshot if usable, then replay the log after it (or from its start) up to the
   * committed entry without effects (but for entries an evaluator of an earlier version left
   * unacknowledged in the group), then reconcile the restrictions. The loop goes on with effects from there.
   * Throws LogTrimmedError when entries it needs were trimmed.
   */
  private async rebuild(): Promise<void> {
    const { redis, keys } = this.d;
    const shard = String(this.d.shard);
    const { committed, pending, entriesBefore } = await shardPosition(redis, keys, this.group);
    this.committed = committed;
    this.entriesRead = entriesBefore;
    const trimmed = await logTrimPoint(redis, keys);
    if (committed === '0-0') {
      if (trimmed !== '0-0') this.trimmedPast(`the shard has no committed entry`, trimmed, committed);
      return;
    }
    // snapshots off: a snapshot left in Redis is not used (the whole log is replayed, as before snapshots
    // existed), unless the log was trimmed, when it is the only way to rebuild
    const useSnapshot = (this.d.snapshotEveryEntries ?? 0) > 0 || trimmed !== '0-0';
    const restored = useSnapshot ? await this.restore(committed, trimmed) : undefined;
    // stopped during the restore (abandoned, or finished after the stop): nothing applied, nothing written
    if (this.stopping) return;
    if (!restored && trimmed !== '0-0')
      this.trimmedPast('no usable snapshot at or after the trim point', trimmed, committed);
    let skipped = 0;
    if (restored) {
      this.state = restored.state;
      this.lastApplied = restored.entry;
      this.entriesRead = restored.entriesRead;
      // entries an earlier version left pending, already in the snapshot's state: acknowledged here
      for (const id of pending)
        if (atOrBefore(id, restored.entry)) {
          this.outbox.acks.push(id);
          skipped++;
        }
    }
    for await (const page of pagesUpTo(redis, keys, committed, 2000, restored?.entry)) {
      if (this.stopping) return;
      for (const [id, fields] of page) {
        const effects = pending.has(id);
        await this.process(id, fields, effects);
        if (effects) this.outbox.acks.push(id);
      }
    }
    // a trim while the log was read (by a trimmer that counted on a snapshot this runner could not use)
    const trimmedNow = await logTrimPoint(redis, keys);
    if (trimmedNow !== trimmed && !(restored && atOrBefore(trimmedNow, restored.entry)))
      this.trimmedPast('the log was trimmed while it was replayed', trimmedNow, committed);
    // the views of every account the shard owns are written, whichever the path (full replay or snapshot):
    // an account moved here by a change of shard count, or one whose view predates a policy change, gets
    // its view now, not at its next event; both paths leave the same views
    // written REBUILD_VIEW_SLICE accounts at a time, a turn of the event loop between slices: one evaluation
    // of a million accounts would block the loop for seconds (past the lease) and hold every view at once
    const owned = [...this.state.pipeline.accounts()].filter((a) => this.state.owns(a)).sort();
    this.dirty.clear();
    for (let i = 0; i < owned.length; i += REBUILD_VIEW_SLICE) {
      if (this.stopping) return;
      for (const a of owned.slice(i, i + REBUILD_VIEW_SLICE)) this.dirty.add(a);
      await this.finishBatch();
      await this.flush();
      await new Promise<void>((r) => setImmediate(r));
    }
    await this.flush();
    await this.reconcile();
    // the pending entries are acknowledged now: their consumers (earlier versions) can go
    const pruned = await pruneConsumers(redis, keys, this.group);
    this.d.metrics.rebuilds.inc({ shard, source: restored ? 'snapshot' : 'full-replay' });
    this.d.log.info(
      {
        shard: this.d.shard,
        lastEntryId: this.lastApplied,
        committed,
        from: restored ? restored.entry : 'start',
        reprocessed: pending.size - skipped,
        pruned,
      },
      restored
        ? 'evaluator state restored from its snapshot and the log after it'
        : 'evaluator state rebuilt from the log',
    );
    if (!restored) this.snapshotAt = undefined;
    await this.maybeSnapshot();
  }

  /** Fail the rebuild: the log lacks entries this shard needs. */
  private trimmedPast(why: string, trimmed: string, committed: string): never {
    this.d.metrics.rebuilds.inc({ shard: String(this.d.shard), source: 'failed' });
    const msg = `cannot rebuild shard ${this.d.shard}: the log was trimmed below ${trimmed} and ${why} (committed ${committed})`;
    this.d.log.error({ shard: this.d.shard, trimmed, committed }, msg);
    throw new LogTrimmedError(msg);
  }

  /**
   * The shard's snapshot as a state, if usable: compatible, at or before `committed`, nothing after it
   * trimmed, and its payload intact. Why not is logged (a full replay follows, or a failure). A stop during
   * the decode abandons it at its next yield (logged; undefined, and the rebuild returns at once).
   */
  private async restore(
    committed: string,
    trimmed: string,
  ): Promise<{ state: ShardState; entry: string; entriesRead: number } | undefined> {
    const { redis, keys } = this.d;
    const shard = this.d.shard;
    const t0 = performance.now();
    const snap = await readSnapshot(redis, keys, shard);
    if (!snap) {
      this.d.log.info({ shard }, 'no state snapshot: rebuilding from the whole log');
      return undefined;
    }
    const { meta, data } = snap;
    let why = refusal(meta, { shard, shards: this.d.shards, policyHash: this.policyHash });
    // a policy change is applied from the restore on, as by a running shard, when the log no longer holds
    // what a replay under the new policy needs (trimmed): otherwise a trimmed deployment could never change
    // its policy. The new policy decides from there on.
    if (
      why &&
      meta &&
      trimmed !== '0-0' &&
      refusal(
        { ...meta, policyHash: this.policyHash },
        {
          shard,
          shards: this.d.shards,
          policyHash: this.policyHash,
        },
      ) === undefined
    ) {
      this.d.log.warn(
        { shard, snapshot: meta.entry, trimmed },
        'state snapshot taken under another policy config: restored (the log is trimmed), the new policy applies from here',
      );
      why = undefined;
    }
    if (!why && meta && !atOrBefore(meta.entry, committed))
      why = `its entry ${meta.entry} is past the committed entry ${committed}`;
    if (!why && meta && !atOrBefore(trimmed, meta.entry))
      why = `the log was trimmed below ${trimmed}, past its entry ${meta.entry}`;
    if (!why && !data) why = 'no payload';
    if (why || !meta || !data) {
      this.d.log.warn({ shard, snapshot: meta?.entry, reason: why }, 'state snapshot refused');
      return undefined;
    }
    let state: ShardState;
    try {
      // a stop (shutdown, lost lease) abandons the decode at its next yield: a large state takes seconds
      state = await decodeSnapshot(
        meta,
        data,
        this.d.policy,
        {
          isStopped: () => this.stopping,
          ...(this.d.onRestoreYield ? { onYield: this.d.onRestoreYield } : {}),
        },
        this.d.idWindowMs === undefined ? {} : { idWindowMs: this.d.idWindowMs },
      );
    } catch (e) {
      if (e instanceof DecodeStoppedError) {
        this.d.log.info(
          { shard, snapshot: meta.entry, ...e.progress },
          'state snapshot restore abandoned by a stop: nothing applied',
        );
        return undefined;
      }
      this.d.log.warn(
        { shard, snapshot: meta.entry, reason: (e as Error).message },
        'state snapshot refused: unreadable',
      );
      return undefined;
    }
    this.snapshotAt = { entry: meta.entry, entriesRead: meta.entriesRead };
    const s = String(shard);
    this.d.metrics.snapshotDuration.observe({ shard: s, op: 'restore' }, (performance.now() - t0) / 1000);
    this.d.metrics.snapshotBytes.set({ shard: s }, meta.bytes);
    this.d.metrics.snapshotTimestamp.set({ shard: s }, meta.takenAtMs / 1000);
    return { state, entry: meta.entry, entriesRead: meta.entriesRead };
  }

  /**
   * Write a snapshot of the state at the committed entry when `snapshotEveryEntries` entries were applied
   * since the last one (or there is none). Only at a committed position with nothing pending. A failed
   * write (or one above `snapshotMaxBytes`, not sent) is logged and counted, and retried after a backoff in
   * entries: `snapshotEveryEntries` after the first failure, doubling with each failure in a row (at most
   * 64 times), so a state that cannot be written does not cost a serialisation on every step.
   */
  private async maybeSnapshot(): Promise<void> {
    const every = this.d.snapshotEveryEntries ?? 0;
    const leaseValue = this.d.leaseValue;
    const shard = String(this.d.shard);
    if (every <= 0 || leaseValue === undefined) return;
    if (this.committed === '0-0' || this.lastApplied !== this.committed || this.outbox.pending()) return;
    const behind = this.entriesRead - (this.snapshotAt?.entriesRead ?? Number.NEGATIVE_INFINITY);
    this.d.metrics.snapshotEntriesBehind.set({ shard }, Number.isFinite(behind) ? behind : this.entriesRead);
    if (this.snapshotAt !== undefined && behind < every) return;
    if (this.snapshotAt?.entry === this.committed) return;
    if (this.snapshotFailures > 0 && this.entriesRead < this.snapshotRetryAt) return;
    const t0 = performance.now();
    const at = { entry: this.committed, entriesRead: this.entriesRead };
    try {
      const { meta, data } = await encodeSnapshot(this.state, {
        ...at,
        modelVersion: this.d.model.status().info?.version ?? null,
        policyHash: this.policyHash,
      });
      const max = this.d.snapshotMaxBytes ?? SNAPSHOT_MAX_BYTES;
      if (meta.bytes > max)
        throw new SnapshotTooLargeError(
          `the snapshot is ${meta.bytes} bytes (gzip), above the cap of ${max}: not written`,
        );
      if (!(await writeSnapshot(this.d.redis, this.d.keys, this.d.shard, leaseValue, meta, data)))
        throw new LeaseLostError(this.d.shard);
      this.snapshotAt = at;
      if (this.snapshotFailures > 0)
        this.d.log.info(
          { shard: this.d.shard, failures: this.snapshotFailures },
          'state snapshot written again after failures',
        );
      this.snapshotFailures = 0;
      this.d.metrics.snapshotConsecutiveFailures.set({ shard }, 0);
      this.d.metrics.snapshotDuration.observe({ shard, op: 'write' }, (performance.now() - t0) / 1000);
      this.d.metrics.snapshotBytes.set({ shard }, meta.bytes);
      this.d.metrics.snapshotTimestamp.set({ shard }, meta.takenAtMs / 1000);
      this.d.metrics.snapshotEntriesBehind.set({ shard }, 0);
      this.d.log.debug(
        { shard: this.d.shard, entry: meta.entry, bytes: meta.bytes, rawBytes: meta.rawBytes },
        'state snapshot written',
      );
    } catch (e) {
      if (e instanceof LeaseLostError) throw e;
      const reason = e instanceof SnapshotTooLargeError ? 'too-large' : 'error';
      this.snapshotFailures++;
      this.snapshotRetryAt = this.entriesRead + every * 2 ** Math.min(this.snapshotFailures - 1, 6);
      this.d.metrics.snapshotWriteFailures.inc({ shard, reason });
      this.d.metrics.snapshotConsecutiveFailures.set({ shard }, this.snapshotFailures);
      this.d.log.warn(
        {
          shard: this.d.shard,
          err: (e as Error).message,
          reason,
          failures: this.snapshotFailures,
          retryAtEntries: this.snapshotRetryAt,
        },
        'writing the state snapshot failed; retried after a backoff',
      );
    }
  }

  /**
   * Stored restriction records the replay did not reproduce, and restrictions of the replay the records
   * lack: the replay's state wins, under a version newer than the stored one.
   */
  private async reconcile(): Promise<void> {
    const stored = await this.d.restrictions.all(this.d.shard);
    const accounts = new Set([...stored.keys()].filter((a) => this.state.owns(a)));
    for (const a of this.state.restrictionStates().keys()) accounts.add(a);
    let changes = 0;
    for (const account of [...accounts].sort()) {
      const rec = stored.get(account) ?? { reduceOnly: false, version: 0 };
      const c = this.state.reconcile(account, rec, this.state.clock);
      if (c) {
        this.queueChange(c, null);
        this.dirty.add(account);
        changes++;
      }
    }
    if (changes === 0) return;
    this.d.log.warn({ shard: this.d.shard, changes }, 'restrictions reconciled with the stored records');
    await this.finishBatch();
    await this.flush();
  }

  /** A restriction change's job and record into the outbox. */
  private queueChange(c: RestrictionChange, modelVersion: string | null): void {
    this.outbox.jobs.push(restrictJob(c, modelVersion));
    this.outbox.records.push(
      restrictionRecord(
        c,
        this.state.restrictionOf(c.account).until,
        jobIdFor('restrict', c.account, c.version),
      ),
    );
  }

  /**
   * The loop: (re)build when needed, write what the outbox holds, else read a batch, apply it and write its
   * results. A step that fails is retried with backoff, never skipping an entry: a failed read or write
   * changed nothing in memory and is simply retried; an entry that threw while being applied may have left
   * the state half-changed, so the state is rebuilt from the log (up to the committed entry) and the loop
   * reads on from there, with effects. Failures are counted and shown in `status()` (so readiness) until
   * a step succeeds (after an entry threw: until that entry is applied); an entry that fails every time
   * holds the shard there, retried every 30 s at most.
   */
  private async run(onRebuilt: () => void): Promise<void> {
    const { reader, keys, batch } = this.d;
    while (!this.stopping) {
      let stage: FailureStage = 'read';
      try {
        if (this.needsRebuild) {
          stage = 'rebuild';
          this.reset();
          await this.rebuild();
          if (this.stopping) break;
          this.needsRebuild = false;
          onRebuilt();
          this.succeeded();
          continue;
        }
        // (a rebuild, a replay of the log, may take long: the loop counts as turning from its end)
        this.lastLoopAt = Date.now();
        if (!(await this.holdsLease())) break;
        if (this.outbox.pending() || compareIds(this.lastApplied, this.committed) > 0) {
          stage = 'flush';
          await this.flush();
          this.succeeded();
          continue;
        }
        const entries: Entry[] = await readAfter(
          reader,
          keys,
          this.lastApplied,
          batch,
          this.d.blockMs ?? 1000,
        );
        if (entries.length === 0) {
          this.succeeded();
          continue;
        }
        const t0 = performance.now();
        stage = 'apply';
        for (const [id, fields] of entries) {
          await this.process(id, fields, true);
          this.outbox.acks.push(id);
        }
        await this.finishBatch();
        stage = 'flush';
        if (!(await this.holdsLease())) break;
        await this.flush();
        await this.maybeSnapshot();
        const last = entries[entries.length - 1]?.[0] ?? '0-0';
        this.lagMs = Math.max(0, Date.now() - Number(last.split('-')[0]));
        this.lastStepAt = Date.now();
        this.steps++;
        this.d.metrics.evalDuration.observe({ shard: String(this.d.shard) }, (performance.now() - t0) / 1000);
        this.d.metrics.evalLag.set({ shard: String(this.d.shard) }, this.lagMs / 1000);
        this.succeeded();
      } catch (e) {
        if (e instanceof LeaseLostError) {
          this.lostLease();
          break;
        }
        await this.failed(stage, e as Error);
      }
    }
  }

  /** A step succeeded: the failure is over (one that an entry threw, once that entry is applied). */
  private succeeded(): void {
    if (!this.failure || this.suspect !== undefined) return;
    this.d.log.info(
      { shard: this.d.shard, failures: this.failure.count, lastEntryId: this.lastApplied },
      'evaluation recovered',
    );
    this.failure = undefined;
    this.d.metrics.evalFailing.set({ shard: String(this.d.shard) }, 0);
  }

  /** Count, log and show a failed step; rebuild after an entry that threw; wait (backoff) before the next. */
  private async failed(stage: FailureStage, e: Error): Promise<void> {
    const entry = e instanceof EntryError ? e.entry : undefined;
    if (entry !== undefined) {
      // the state may be half-changed: rebuild it; the entry is applied on its own next time
      this.needsRebuild = true;
      this.suspect = entry;
    }
    const count = (this.failure?.count ?? 0) + 1;
    this.failure = {
      stage,
      message: e.message,
      ...(entry !== undefined ? { entry } : {}),
      since: this.failure?.since ?? Date.now(),
      count,
    };
    const shard = String(this.d.shard);
    this.d.metrics.evalFailures.inc({ shard, stage });
    this.d.metrics.evalFailing.set({ shard }, count);
    const info = { shard: this.d.shard, stage, entry, err: e.message, failures: count };
    if (entry !== undefined)
      this.d.log.error(info, 'applying a log entry failed; rebuilding and retrying it');
    else this.d.log.warn(info, 'evaluation step failed; retrying');
    // an entry that throws (or a trimmed log) will likely fail again: retry less often than a read or write
    const capMs = entry !== undefined || e instanceof LogTrimmedError ? 30_000 : 3000;
    await new Promise((r) => setTimeout(r, Math.min(100 * 2 ** Math.min(count, 9), capMs)));
  }

  /**
   * Apply one entry (exactly once: entries at or before the last applied are skipped); `lastApplied`
   * moves only once it is fully applied. What it throws comes out as an `EntryError` naming it. An entry
   * that threw before is applied on its own: the results of the entries before it are written first, so
   * an entry that keeps failing holds back only itself and what follows.
   */
  private async process(id: string, fields: string[], effects: boolean): Promise<void> {
    if (compareIds(id, this.lastApplied) <= 0) return;
    if (id === this.suspect && this.outbox.pending()) {
      await this.finishBatch();
      await this.flush();
    }
    try {
      await this.applyEntry(id, fields, effects);
    } catch (e) {
      throw new EntryError(id, e as Error);
    }
    this.lastApplied = id;
    this.entriesRead++;
    // (past it also clears it: an operator may have deleted it from the log)
    if (this.suspect !== undefined && compareIds(id, this.suspect) >= 0) this.suspect = undefined;
  }

  private async applyEntry(id: string, fields: string[], effects: boolean): Promise<void> {
    const ev = decodeEntry(fields);
    if (!ev) return;
    const r = this.state.apply(ev);
    const shard = String(this.d.shard);
    if (r.kind === 'foreign') return;
    if (r.kind === 'refused') {
      this.d.metrics.eventsRefused.inc({ shard, code: r.reason });
      // an account event refused as expired (a fill, a deposit) is lost to the shard: say so loudly
      if (r.reason === 'expired')
        this.d.log.warn({ shard, entry: id, reason: r.reason, detail: r.detail }, 'event refused');
      else this.d.log.debug({ shard, entry: id, reason: r.reason, detail: r.detail }, 'event refused');
      return;
    }
    this.d.metrics.eventsApplied.inc({ shard });
    if ('symbol' in ev && (ev.type === 'mark' || ev.type === 'book' || ev.type === 'instrument') && effects) {
      const input = this.state.marketInput(ev.symbol);
      if (input) this.outbox.market.set(ev.symbol, { input, ts: this.state.clock });
    }
    if (r.account !== undefined) {
      // (a replay without effects writes no views as it goes: the rebuild writes every account's at its end)
      if (effects) this.dirty.add(r.account);
      const jobId = jobIdOfEvent(ev.id);
      if (effects && jobId) {
        const m = this.state.pipeline.book.snapshot(r.account);
        this.outbox.settled.push({
          entry: id,
          account: r.account,
          jobId,
          data: {
            eventId: ev.id,
            type: ev.type,
            after: m
              ? {
                  equity: m.equity,
                  mm: m.mm,
                  im: m.im,
                  marginRatio: Number.isFinite(m.marginRatio) ? m.marginRatio : null,
                }
              : null,
          },
        });
      }
    }
    if (r.markSymbol !== undefined)
      await this.evaluate(this.state.holders(r.markSymbol), ev.ts, effects, true);
    for (const c of this.state.sweep(this.state.clock, r.account)) {
      // the lifted account's view is refreshed at the end of the batch
      if (effects) this.dirty.add(c.account);
      if (effects) this.queueChange(c, null);
    }
  }

  /** Accounts whose own events arrived since their last evaluation get a fresh (preview) view. */
  private async finishBatch(): Promise<void> {
    if (this.dirty.size === 0) return;
    const accounts = [...this.dirty].sort();
    this.dirty.clear();
    if (!Number.isFinite(this.state.clock)) return;
    try {
      await this.evaluate(accounts, this.state.clock, true, false);
    } catch (e) {
      throw new EntryError(this.lastApplied, e as Error);
    }
  }

  /**
   * pd per row from the model; nulls (rules only) when there is no model, or when scoring throws: a
   * broken model never keeps the rules (LIQUIDATE below maintenance margin) from being decided. A failure
   * is counted, logged and shown in `status()` (so readiness) until a scoring succeeds again.
   */
  private async score(matrix: Float32Array, rows: number): Promise<Scored> {
    const rulesOnly: Scored = { pds: new Array<number | null>(rows).fill(null), version: null };
    let r: Scored | undefined;
    try {
      r = await this.d.model.use(async (scorer) => {
        if (scorer.info.featureNames.length !== FEATURE_COUNT) return undefined;
        const pd = await scorer.score(matrix, rows);
        return {
          pds: Array.from(pd, (x) => (Number.isFinite(x) ? x : null)),
          version: scorer.info.version,
          explain: (row: Float32Array, top: number) => scorer.explain(row, top),
        };
      });
    } catch (e) {
      this.scoringFailed(e as Error, rows);
      return rulesOnly;
    }
    this.scoring = r ? 'model' : 'rules-only';
    if (this.scoreError) {
      this.d.log.info(
        { shard: this.d.shard, failures: this.scoreError.failures },
        'scoring works again; deciding with the model',
      );
      this.scoreError = undefined;
      this.d.metrics.evalRulesOnly.set({ shard: String(this.d.shard) }, 0);
    }
    if (r) this.d.metrics.scoresComputed.inc({ source: 'evaluator' }, rows);
    return r ?? rulesOnly;
  }

  private scoringFailed(e: Error, rows: number): void {
    const shard = String(this.d.shard);
    this.d.metrics.scoreFailures.inc({ source: 'evaluator', stage: 'score' });
    this.d.metrics.evalRulesOnly.set({ shard }, 1);
    if (!this.scoreError)
      this.d.log.error(
        { shard: this.d.shard, rows, err: e.message },
        'scoring failed: deciding rules-only until it works again',
      );
    this.scoring = 'rules-only';
    this.scoreError = {
      message: e.message,
      since: this.scoreError?.since ?? Date.now(),
      failures: (this.scoreError?.failures ?? 0) + 1,
    };
  }

  /** Features -> pd -> policy for `accounts` at `ts`; `commit` = a real decision (on a mark). */
  private async evaluate(accounts: string[], ts: number, effects: boolean, commit: boolean): Promise<void> {
    if (accounts.length === 0) return;
    const matrix = this.state.features(accounts, ts);
    const scored = await this.score(matrix, accounts.length);
    const evals = this.state.decide(accounts, scored.pds, ts, commit);
    for (const a of accounts) if (commit) this.dirty.delete(a);
    if (!effects) return;
    const now = Date.now();
    const explainable: { e: Evaluation; row: number; pd: number }[] = [];
    const rowOf = new Map(accounts.map((a, i) => [a, i]));
    for (const e of evals) {
      const row = rowOf.get(e.account) ?? 0;
      const pd = scored.pds[row] ?? null;
      const view = riskView(e, pd, [], scored.version, ts, now);
      this.outbox.views.set(e.account, view);
      if (pd !== null) this.d.metrics.pd.observe(pd);
      if (commit) {
        this.d.metrics.decisions.inc({ decision: e.decision.action });
        const job = executionJob(e, (s) => this.state.marketInput(s), scored.version);
        if (job) this.outbox.jobs.push(job);
        if (e.change) this.queueChange(e.change, scored.version);
      }
      if (pd !== null && e.decision.action !== 'HEALTHY') explainable.push({ e, row, pd });
    }
    if (scored.explain && explainable.length > 0) {
      explainable.sort((a, b) => b.pd - a.pd);
      for (const x of explainable.slice(0, this.d.explainCap ?? 256)) {
        let top: FeatureContribution[];
        try {
          top = await scored.explain(
            matrix.subarray(x.row * FEATURE_COUNT, (x.row + 1) * FEATURE_COUNT),
            this.d.explainTop ?? 5,
          );
        } catch (e) {
          // the decisions stand; these views list no features
          this.d.metrics.scoreFailures.inc({ source: 'evaluator', stage: 'explain' });
          this.d.log.warn({ shard: this.d.shard, err: (e as Error).message }, 'explaining failed');
          break;
        }
        const view = this.outbox.views.get(x.e.account);
        if (view) view.topFeatures = top;
      }
    }
  }

  /**
   * Write everything the outbox holds (what fails stays for the next attempt), then commit: every entry
   * up to the last applied is done. Entries read in this design are never pending in the group, so their
   * acknowledgements change nothing there; they make the outbox record the shard's progress.
   */
  private async flush(): Promise<void> {
    await this.outbox.flush(this.d, {
      shard: this.d.shard,
      group: this.group,
      consumer: this.d.consumer,
      lastEntryId: this.lastApplied,
      clock: this.state.clock,
      ...(this.d.leaseValue !== undefined
        ? { fence: { key: this.d.keys.shardLease(this.d.shard), value: this.d.leaseValue } }
        : {}),
    });
    if (compareIds(this.lastApplied, this.committed) <= 0) return;
    const { redis, keys } = this.d;
    await commitPosition(redis, keys, this.group, this.lastApplied, this.entriesRead);
    this.committed = this.lastApplied;
  }

  /** False (and the runner stopping) once another process holds the shard's lease. */
  private async holdsLease(): Promise<boolean> {
    if (!this.d.fence || (await this.d.fence())) return true;
    this.lostLease();
    return false;
  }

  /** The lease is lost (seen by `fence`, or a fenced write refused): stop, leaving the step to the new owner. */
  private lostLease(): void {
    this.leaseLost = true;
    this.stopping = true;
    this.d.log.warn(
      { shard: this.d.shard, lastEntryId: this.lastApplied, committed: this.committed },
      'lost the shard lease: stopping; the new owner goes on from the committed entry',
    );
  }
}
