/**
 * FeaturePipeline: the one code path from canonical events to feature rows, used by training (snapshots of
 * a replayed history), by scoring of histories and by the live service (vectors on demand).
 *
 * `apply(event)` is O(1) amortised per event (margin-changing account events add two margin-core reads) and
 * memory is bounded per account and per instrument. `snapshot(ts)` writes every account's row into one
 * Float32Array without changing any feature state: a snapshot taken while streaming equals the snapshot
 * of a fresh pipeline fed the same events up to `ts`.
 *
 * Ordering: events up to `toleranceMs` behind the newest seen are held and applied in `ts` order; older ones
 * are refused and counted as late; a repeated `id` is ignored and counted. `snapshot(ts)` / `vector(ts)`
 * first apply every held event with a ts <= `ts`; afterwards events older than `ts` are late. While a
 * `snapshotParallel` is in flight, events offered are held and applied when it completes, and another
 * snapshot or vector throws PipelineBusyError.
 */
import type { CanonicalEvent } from '../events/schema.js';
import { EventGate } from '../events/validate.js';
import { type MarginBook, type MarginBookOptions, MarginRuleError } from '../margin/index.js';
import { emptyFlowReading, rateNorm } from './account-flow.js';
import { FeatureState, type FeatureStateState } from './feature-state.js';
import { MarginSweep, marginInputs } from './margin-sweep.js';
import { emptyMarketView, type InstrumentMarket, type MarketView } from './market-state.js';
import type { Pacer } from './pace.js';
import { ReorderBuffer } from './reorder-buffer.js';
import { type RowContext, writeRow } from './row-writer.js';
import { type RowsJob, runRowsJob } from './rows-job.js';
import { FEATURE_COUNT, FEATURE_PARAMS, FEATURE_SCHEMA_HASH } from './schema.js';
import type { SnapshotPool } from './snapshot-pool.js';

export interface FeaturePipelineOptions {
  /** ms an event may arrive behind the newest seen and still be applied in order (default 0) */
  toleranceMs?: number;
  /** options of the pipeline's own MarginBook (insurance fund, dynamic margin) */
  margin?: MarginBookOptions;
  /** expected number of accounts (pre-sizes the per-account arrays) */
  expectedAccounts?: number;
  /**
   * this pipeline's state is saved (the evaluator with snapshots on). Default off: `saveState` refuses. What
   * a save holds is bounded either way (the indicators keep at most 2 * REBASE_CANDLES candles per series).
   */
  recordForSnapshots?: boolean;
  /**
   * ms of event time an event id is remembered for, to recognise a resend (default: for ever). The evaluator
   * shards set PREEMPT_SHARD_ID_WINDOW_MS; what they do with an event whose id may be forgotten is theirs
   * (`ShardState.apply` refuses an account event as `expired`; a market event that old is late anyway).
   */
  idWindowMs?: number;
  /** see EventGateOptions.marketIdsAtFrontier: only with `toleranceMs` 0 */
  marketIdsAtFrontier?: boolean;
  /** the events come from `readEventsFile`, which refused duplicate ids already: keep none here */
  idsCheckedUpstream?: boolean;
}

export interface PipelineStats {
  received: number;
  applied: number;
  /** repeated `id`, ignored */
  duplicates: number;
  /** older than what was already applied, refused */
  late: number;
  /** refused at arrival (e.g. an undeclared instrument) */
  invalid: number;
  /** refused by the margin core at application (MarginRuleError); nothing changed */
  rejected: number;
  lastRefusal?: string;
}

export interface SnapshotOptions {
  /** only accounts holding an open position (what training labels use) */
  onlyWithPosition?: boolean;
  /** a matrix to write into (reused between snapshots); must hold rows * FEATURE_COUNT floats */
  into?: Float32Array;
}

export interface FeatureSnapshot {
  /** ms: the instant the snapshot describes */
  ts: number;
  /** row order */
  accounts: string[];
  /** rows * cols, row-major, schema order */
  matrix: Float32Array;
  rows: number;
  cols: number;
  schemaHash: string;
}

export class PipelineBusyError extends Error {
  readonly code = 'PIPELINE_BUSY';
  constructor() {
    super('a parallel snapshot is running: await it before the next snapshot or vector');
    this.name = 'PipelineBusyError';
  }
}

/**
 * Everything a FeaturePipeline holds (see `FeaturePipeline.saveState`), as plain data (v8-serialisable).
 * Not in it: scratch buffers and the cache of market views (recomputed from the state on first use).
 */
export interface PipelineState {
  toleranceMs: number;
  stats: PipelineStats;
  gate: ReturnType<EventGate['state']>;
  order: ReturnType<ReorderBuffer<CanonicalEvent>['state']>;
  features: FeatureStateState;
}

export type ApplyOutcome = 'accepted' | 'duplicate' | 'late' | 'invalid';

export class SnapshotTimeError extends Error {
  readonly code = 'SNAPSHOT_IN_PAST';
  constructor(
    readonly requestedTs: number,
    readonly appliedTs: number,
  ) {
    super(
      `cannot describe ts ${requestedTs}: events up to ${appliedTs} were already applied; snapshot at or after ` +
        'the last applied event (or replay into a fresh pipeline)',
    );
    this.name = 'SnapshotTimeError';
  }
}

export class FeaturePipeline {
  readonly stats: PipelineStats = {
    received: 0,
    applied: 0,
    duplicates: 0,
    late: 0,
    invalid: 0,
    rejected: 0,
  };
  private readonly gate: EventGate;
  private readonly order: ReorderBuffer<CanonicalEvent>;
  private readonly state: FeatureState;
  private readonly sweep = new MarginSweep();
  private readonly release = (ev: CanonicalEvent): void => this.applyNow(ev);
  /** a parallel snapshot is running: workers read the state, so events wait in `deferred` */
  private parallelBusy = false;
  private deferred: CanonicalEvent[] = [];
  private viewTs = Number.NaN;
  private viewVersion = -1;
  private views: MarketView[] = [];

  constructor(opts: FeaturePipelineOptions = {}) {
    this.order = new ReorderBuffer(opts.toleranceMs ?? 0);
    if (opts.marketIdsAtFrontier && (opts.toleranceMs ?? 0) !== 0)
      throw new RangeError('marketIdsAtFrontier needs an in-order stream (toleranceMs 0)');
    this.gate = new EventGate({
      ...(opts.idWindowMs === undefined ? {} : { idWindowMs: opts.idWindowMs }),
      ...(opts.marketIdsAtFrontier ? { marketIdsAtFrontier: true } : {}),
      ...(opts.idsCheckedUpstream ? { idsCheckedUpstream: true } : {}),
    });
    this.state = new FeatureState(opts.margin, opts.expectedAccounts ?? 1024, opts.recordForSnapshots);
  }

  /** Built with `recordForSnapshots` (or restored from a saved state): `saveState` works. */
  get recordsForSnapshots(): boolean {
    return this.state.record;
  }

  /**
   * A copy of the whole state: a pipeline made by `restore` from it and fed the same events gives the same
   * results, bit for bit. Not while a parallel snapshot runs.
   */
  saveState(): PipelineState {
    if (!this.state.record)
      throw new Error(
        'this feature pipeline was built without recordForSnapshots: its indicator state cannot be saved',
      );
    if (this.parallelBusy) throw new PipelineBusyError();
    return {
      toleranceMs: this.order.toleranceMs,
      stats: { ...this.stats },
      gate: this.gate.state(),
      order: this.order.state(),
      features: this.state.state(),
    };
  }

  /**
   * The pipeline `s` describes (recording, as the one saved). Long for a large state (the candles kept are
   * re-fed to fresh indicators, every id remembered re-added): yields to the event loop as `pace` says. `idWindowMs`: the
   * restoring process's id window (default: the saved one).
   */
  static async restore(
    s: PipelineState,
    pace?: Pacer,
    opts: { idWindowMs?: number; marketIdsAtFrontier?: boolean } = {},
  ): Promise<FeaturePipeline> {
    const p = new FeaturePipeline({
      toleranceMs: s.toleranceMs,
      expectedAccounts: 16,
      recordForSnapshots: true,
    });
    const w = p as unknown as {
      stats: PipelineStats;
      gate: EventGate;
      order: ReorderBuffer<CanonicalEvent>;
      state: FeatureState;
    };
    w.stats = { ...s.stats };
    // ids of a first-format state (no event times) count as seen at the newest event
    w.gate = await EventGate.fromState(s.gate, pace, { ...opts, legacyTs: s.order.maxSeenTs });
    w.order = ReorderBuffer.fromState(s.toleranceMs, s.order);
    w.state = await FeatureState.fromState(s.features, pace);
    return p;
  }

  /** The margin state this pipeline drives: read it, do not apply events to it yourself. */
  get book(): MarginBook {
    return this.state.book;
  }

  /** Offer one event (already schema-valid, e.g. from readEventsFile or parseEvent). */
  apply(ev: CanonicalEvent): ApplyOutcome {
    this.stats.received++;
    const newSymbol = ev.type === 'instrument' && !this.gate.isDeclared(ev.symbol);
    const gated = this.gate.checkParsed(ev);
    if (gated.kind === 'duplicate') {
      this.stats.duplicates++;
      return 'duplicate';
    }
    if (gated.kind === 'invalid') {
      this.stats.invalid++;
      this.stats.lastRefusal = `${ev.type} at ${ev.ts}: ${gated.field}: ${gated.reason}`;
      return 'invalid';
    }
    if (this.parallelBusy) {
      // workers are reading the state: hold the event until they are done (then it may still be late)
      this.deferred.push(ev);
      return 'accepted';
    }
    if (!this.order.push(ev, this.release)) {
      // a late instrument never declares its symbol (the margin core never sees it)
      if (newSymbol && ev.type === 'instrument') this.gate.undeclare(ev.symbol);
      this.stats.late++;
      this.stats.lastRefusal = `${ev.type} at ${ev.ts}: ts: earlier than ${this.order.releasedTs}, already applied past`;
      return 'late';
    }
    return 'accepted';
  }

  /** Apply everything still held (end of a file). */
  flush(): void {
    this.order.drain(this.release);
  }

  /** ms, event time: everything at or before it was released (applied or refused); older arrivals are late */
  get releasedTs(): number {
    return this.order.releasedTs;
  }

  /** ms, event time: an event stamped at or before it may have had its id forgotten (id window) */
  get idsForgottenThroughTs(): number {
    return this.gate.idsForgottenThroughTs;
  }

  /** Events held for reordering. */
  get buffered(): number {
    return this.order.size;
  }

  /** Account ids in row order (first seen first). */
  accounts(): readonly string[] {
    return this.state.ids;
  }

  /** The market state of an instrument (candles, indicators), for inspection. */
  market(symbol: string): InstrumentMarket | undefined {
    return this.state.market(symbol);
  }

  /** Apply held events up to `ts` and close every candle that ended by `ts`. */
  advanceTo(ts: number): void {
    if (this.parallelBusy) throw new PipelineBusyError();
    if (ts < this.state.lastAppliedTs) throw new SnapshotTimeError(ts, this.state.lastAppliedTs);
    this.order.releaseUpTo(ts, this.release);
    for (const m of this.state.markets) m.advanceTo(ts);
  }

  /**
   * The ids of the accounts holding a position at `ts`, in row order: the rows `snapshot(ts, {onlyWithPosition:
   * true})` would write, without writing them (a caller that needs no features).
   */
  accountsWithPosition(ts: number): string[] {
    this.advanceTo(ts);
    const st = this.state;
    const count = st.mirror.count;
    const out: string[] = [];
    for (let i = 0; i < st.ids.length; i++) if (count[i]! > 0) out.push(st.ids[i]!);
    return out;
  }

  snapshot(ts: number, opts: SnapshotOptions = {}): FeatureSnapshot {
    const { snap, rowsIdx } = this.prepare(ts, opts, false);
    this.writeRows(ts, snap.matrix, snap.rows, rowsIdx);
    return snap;
  }

  /**
   * The same snapshot, its rows split between this thread and the pool's worker threads (equal to
   * `snapshot` bit for bit). The matrix is on a SharedArrayBuffer; an `into` matrix must be too.
   */
  async snapshotParallel(
    ts: number,
    pool: SnapshotPool,
    opts: SnapshotOptions = {},
  ): Promise<FeatureSnapshot> {
    const { snap, rowsIdx } = this.prepare(ts, opts, true);
    const parts = pool.size + 1;
    const chunk = Math.ceil(snap.rows / parts);
    const base = this.job(ts, snap.matrix, rowsIdx, 0, Math.min(chunk, snap.rows));
    const m = this.state.mirror;
    const mirror = {
      cash: m.cash,
      known: m.known,
      count: m.count,
      inst: m.inst,
      qty: m.qty,
      entry: m.entry,
      overflow: m.overflow,
    };
    const jobs: RowsJob[] = [];
    for (let k = 1; k < parts && k * chunk < snap.rows; k++)
      jobs.push({ ...base, mirror, from: k * chunk, to: Math.min((k + 1) * chunk, snap.rows) });
    this.parallelBusy = true;
    try {
      const others = pool.run(jobs);
      try {
        runRowsJob(base, this.sweep);
      } finally {
        await others;
      }
    } finally {
      this.parallelBusy = false;
      const held = this.deferred;
      this.deferred = [];
      for (const ev of held) if (!this.order.push(ev, this.release)) this.stats.late++;
    }
    return snap;
  }

  /** Apply held events up to `ts`, pick the rows and the matrix. */
  private prepare(
    ts: number,
    opts: SnapshotOptions,
    shared: boolean,
  ): { snap: FeatureSnapshot; rowsIdx: Int32Array | null } {
    const into = opts.into;
    if (into && shared && !(into.buffer instanceof SharedArrayBuffer))
      throw new RangeError(
        'snapshotParallel writes from several threads: `into` must be on a SharedArrayBuffer',
      );
    this.advanceTo(ts);
    const st = this.state;
    let rowsIdx: Int32Array | null = null;
    if (opts.onlyWithPosition) {
      const count = st.mirror.count;
      let n = 0;
      for (let i = 0; i < st.ids.length; i++) if (count[i]! > 0) n++;
      rowsIdx = shared ? new Int32Array(new SharedArrayBuffer(4 * n)) : new Int32Array(n);
      n = 0;
      for (let i = 0; i < st.ids.length; i++) if (count[i]! > 0) rowsIdx[n++] = i;
    }
    const rows = rowsIdx ? rowsIdx.length : st.ids.length;
    const size = rows * FEATURE_COUNT;
    if (into && into.length < size)
      throw new RangeError(`snapshot needs ${size} floats, the matrix given holds ${into.length}`);
    const matrix = into
      ? into.subarray(0, size)
      : shared
        ? new Float32Array(new SharedArrayBuffer(4 * size))
        : new Float32Array(size);
    const accounts = rowsIdx ? Array.from(rowsIdx, (i) => st.ids[i]!) : st.ids.slice();
    return {
      snap: { ts, accounts, matrix, rows, cols: FEATURE_COUNT, schemaHash: FEATURE_SCHEMA_HASH },
      rowsIdx,
    };
  }

  /** One account's row at `ts` (the same code as `snapshot`); unknown accounts get the no-history row. */
  vector(account: string, ts: number, out: Float32Array = new Float32Array(FEATURE_COUNT)): Float32Array {
    this.advanceTo(ts);
    const i = this.state.index.get(account);
    if (i === undefined) {
      // nothing seen for this account: no flows, no margin state
      this.sweep.runUnknown();
      writeRow(out, 0, this.sweep, 0, emptyFlowReading(), this.rowContext(ts));
      return out;
    }
    this.writeRows(ts, out, 1, Int32Array.of(i));
    return out;
  }

  /**
   * Rows of `accounts` (in that order) at `ts`, row-major: the same values as `vector` for each, computed
   * in one sweep. Unknown accounts get the no-history row.
   */
  vectors(
    accounts: readonly string[],
    ts: number,
    out: Float32Array = new Float32Array(accounts.length * FEATURE_COUNT),
  ): Float32Array {
    if (out.length < accounts.length * FEATURE_COUNT)
      throw new RangeError(`vectors needs ${accounts.length * FEATURE_COUNT} floats, got ${out.length}`);
    this.advanceTo(ts);
    const idx = new Int32Array(accounts.length);
    let known = 0;
    for (let r = 0; r < accounts.length; r++) {
      const i = this.state.index.get(accounts[r]!);
      if (i !== undefined) idx[known++] = i;
    }
    const rows = new Float32Array(known * FEATURE_COUNT);
    this.writeRows(ts, rows, known, idx.subarray(0, known));
    let k = 0;
    for (let r = 0; r < accounts.length; r++) {
      const target = out.subarray(r * FEATURE_COUNT, (r + 1) * FEATURE_COUNT);
      if (this.state.index.has(accounts[r]!))
        target.set(rows.subarray(k * FEATURE_COUNT, ++k * FEATURE_COUNT));
      else this.vector(accounts[r]!, ts, target);
    }
    return out;
  }

  /** Rows of the accounts `rowsIdx` (null: all, in order) into `out`. */
  private writeRows(ts: number, out: Float32Array, rows: number, rowsIdx: Int32Array | null): void {
    runRowsJob(this.job(ts, out, rowsIdx, 0, rows), this.sweep);
  }

  /** The job writing rows [from, to) at `ts` (dirty mirror entries refreshed first). */
  private job(ts: number, out: Float32Array, rowsIdx: Int32Array | null, from: number, to: number): RowsJob {
    const st = this.state;
    st.refreshDirty();
    const ctx = this.rowContext(ts);
    return {
      ts,
      coverage: ctx.coverage,
      norm: rateNorm(this.observedMs(ts)),
      views: ctx.views,
      margin: marginInputs(st.book, st.symbols),
      flows: st.flows.data,
      mirror: st.mirror,
      rowsIdx,
      from,
      to,
      out,
    };
  }

  private observedMs(ts: number): number {
    return Number.isNaN(this.state.startTs) ? 0 : ts - this.state.startTs;
  }

  private rowContext(ts: number): RowContext & { views: MarketView[] } {
    const st = this.state;
    if (ts !== this.viewTs || st.version !== this.viewVersion || this.views.length !== st.markets.length) {
      const norm = rateNorm(this.observedMs(ts));
      this.views = st.markets.map((m) => m.view(ts, norm, emptyMarketView()));
      this.viewTs = ts;
      this.viewVersion = st.version;
    }
    return {
      ts,
      coverage: 1 - Math.exp(-this.observedMs(ts) / FEATURE_PARAMS.fastTauMs),
      views: this.views,
    };
  }

  private applyNow(ev: CanonicalEvent): void {
    try {
      this.state.apply(ev);
    } catch (err) {
      if (!(err instanceof MarginRuleError)) throw err;
      this.stats.rejected++;
      this.stats.lastRefusal = `${ev.type} at ${ev.ts}: ${err.message}`;
      return;
    }
    this.stats.applied++;
  }
}
