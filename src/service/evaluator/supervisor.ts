/**
 * Runs the evaluator shards a worker process holds a lease on: it tries to take every free shard, renews
 * the leases it holds, stops a shard when its lease is lost, and releases its leases on shutdown so that
 * another process takes over without waiting for expiry. With one shard and several worker processes, one
 * evaluates and the others stand by. Each acquisition has its own lease value, which the shard's runner
 * checks before every read and every write of results (a runner whose process stalled past its lease
 * stops there, without waiting for the next renewal).
 *
 * Every `trimIntervalMs` it also trims the event log below the oldest shard snapshot (`trimLog`): any
 * process may, at the same time as others (the trim only moves forwards and never past what a shard needs).
 */
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { safeTrimPoint, trimLogBelow } from '../state/snapshots.js';
import { ShardLease } from './lease.js';
import { type RunnerDeps, type RunnerStatus, ShardRunner } from './runner.js';
import { policyHash } from './snapshot.js';

export interface SupervisorDeps extends Omit<RunnerDeps, 'shard' | 'consumer' | 'reader'> {
  /** makes a dedicated blocking connection for a shard's reads */
  newReader: () => Redis;
  /** ms */
  leaseMs: number;
  /** most shards this process evaluates; 0 = no limit */
  maxShards: number;
  log: Logger;
  /** ms between attempts to trim the log (0 or none: never) */
  trimIntervalMs?: number;
  /** ms of log history the trim always keeps */
  logRetentionMs?: number;
}

interface Held {
  lease: ShardLease;
  runner: ShardRunner;
  reader: Redis;
}

export class EvaluatorSupervisor {
  readonly id = `${process.pid}-${randomBytes(4).toString('hex')}`;
  private readonly held = new Map<number, Held>();
  private timer: NodeJS.Timeout | undefined;
  private ticking: Promise<void> | undefined;
  private closed = false;
  /** acquisitions so far: each lease value is unique */
  private acquisitions = 0;
  /** ms (wall clock) of the last trim attempt */
  private lastTrimAt = 0;
  private lastTrimBlock: string | undefined;
  private trimming: Promise<number> | undefined;
  /** runners stopping after losing their lease (awaited by `close`) */
  private readonly stopping = new Set<Promise<void>>();

  constructor(private readonly d: SupervisorDeps) {}

  /** Take free shards now, then keep renewing and taking every third of a lease period. */
  async start(): Promise<void> {
    await this.tick();
    this.timer = setInterval(
      () => {
        this.ticking ??= this.tick().finally(() => {
          this.ticking = undefined;
        });
      },
      Math.max(200, Math.floor(this.d.leaseMs / 3)),
    );
  }

  shards(): number[] {
    return [...this.held.keys()].sort((a, b) => a - b);
  }

  status(): RunnerStatus[] {
    return [...this.held.values()].map((h) => h.runner.status());
  }

  /**
   * Every held shard's loop has turned within `maxAgeMs` (a loop stuck in a step fails this), its latest
   * step succeeded (a shard retrying a failed read, write or entry fails this) and it decides with its
   * model when it has one (a shard whose scoring throws decides rules-only and fails this).
   */
  healthy(maxAgeMs: number, now = Date.now()): boolean {
    return this.status().every(
      (s) => !s.scoreError && !s.failure && (s.lastLoopAt === 0 || now - s.lastLoopAt <= maxAgeMs),
    );
  }

  private async tick(): Promise<void> {
    if (this.closed) return;
    const every = this.d.trimIntervalMs ?? 0;
    if (every > 0 && !this.trimming && Date.now() - this.lastTrimAt >= every) {
      this.lastTrimAt = Date.now();
      // in the background: reading every shard's snapshot must not delay the lease renewals below
      this.trimming = this.trimLog()
        .catch((e: Error) => {
          this.d.log.warn({ err: e.message }, 'trimming the log failed');
          return 0;
        })
        .finally(() => {
          this.trimming = undefined;
        });
    }
    for (let shard = 0; shard < this.d.shards; shard++) {
      const held = this.held.get(shard);
      try {
        if (held) {
          if (!(await held.lease.renew())) {
            this.d.log.warn({ shard }, 'lost the shard lease; stopping its evaluator');
            this.held.delete(shard);
            this.stopInBackground(shard, held);
          }
          continue;
        }
        if (this.d.maxShards > 0 && this.held.size >= this.d.maxShards) continue;
        const owner = `${this.id}#${++this.acquisitions}`;
        const lease = new ShardLease(this.d.redis, this.d.keys.shardLease(shard), owner, this.d.leaseMs);
        if (!(await lease.acquire())) continue;
        const reader = this.d.newReader();
        const runner = new ShardRunner({
          ...this.d,
          shard,
          consumer: owner,
          reader,
          fence: () => lease.holds(),
          leaseValue: owner,
        });
        this.held.set(shard, { lease, runner, reader });
        this.d.log.info({ shard, lease: owner }, 'evaluating shard');
        void runner.start();
      } catch (e) {
        this.d.log.warn({ shard, err: (e as Error).message }, 'shard supervision failed; retrying');
      }
    }
  }

  /**
   * Stop a runner whose lease was lost without waiting for it (its current step may be long, e.g. a
   * restore): the renewals of the shards after it in this tick must not wait. `close` awaits it.
   */
  private stopInBackground(shard: number, held: Held): void {
    const done: Promise<void> = held.runner
      .stop()
      .catch((e: Error) => this.d.log.warn({ shard, err: e.message }, 'stopping a shard evaluator failed'))
      .finally(() => {
        held.reader.disconnect();
        this.stopping.delete(done);
      });
    this.stopping.add(done);
  }

  /**
   * Trim the log below the oldest shard snapshot (every shard must have a usable one), keeping
   * `logRetentionMs` of history. Returns the entries deleted.
   */
  async trimLog(): Promise<number> {
    const { redis, keys, shards, log } = this.d;
    const safe = await safeTrimPoint(redis, keys, shards, policyHash(this.d.policy));
    if (safe.point === null) {
      if (safe.reason !== this.lastTrimBlock) log.info({ reason: safe.reason }, 'log not trimmed');
      this.lastTrimBlock = safe.reason;
      return 0;
    }
    this.lastTrimBlock = undefined;
    const { deleted, point } = await trimLogBelow(
      redis,
      keys,
      safe.point,
      this.d.logRetentionMs ?? 86_400_000,
    );
    if (deleted > 0) {
      this.d.metrics.logTrimmedEntries.inc(deleted);
      log.info({ deleted, below: point, oldestSnapshot: safe.point }, 'log trimmed');
    }
    return deleted;
  }

  /** Stop every runner after its current step, and hand the shards back. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    await this.ticking;
    await this.trimming;
    await Promise.all([...this.stopping]);
    await Promise.all(
      [...this.held.values()].map(async (h) => {
        await h.runner.stop();
        await h.lease.release().catch(() => {});
        h.reader.disconnect();
      }),
    );
    this.held.clear();
  }
}
