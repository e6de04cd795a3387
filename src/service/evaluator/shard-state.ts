/**
 * One evaluator shard's in-memory state: the feature pipeline (which drives its own MarginBook) over
 * every market event and the account events of the shard's accounts, the policy memory per account and
 * the decision epoch (the account's position version) and the reduce-only restriction (on/off and its
 * version, the count of its changes). No I/O: the runner feeds it stream entries in
 * order, scores the rows it builds, and asks it for decisions. Replaying the same entries gives the
 * same state and the same decisions.
 */
import type { CanonicalEvent } from '../../events/schema.js';
import { rateNorm } from '../../features/account-flow.js';
import { emptyMarketView } from '../../features/market-state.js';
import { Pacer } from '../../features/pace.js';
import { FeaturePipeline, type PipelineState } from '../../features/pipeline.js';
import { FEATURE_COUNT } from '../../features/schema.js';
import {
  type AccountMargin,
  type Decision,
  type DepthView,
  decide,
  type PolicyConfig,
  type PolicyMemory,
} from '../../margin/index.js';
import { reduceOnlyHeld } from '../../margin/policy.js';
import type { MarketInput, RestrictJob } from '../queue/job.js';
import { shardOf } from '../state/keys.js';

export type ApplyResult =
  | { kind: 'applied'; account?: string; markSymbol?: string; restamped: boolean }
  | { kind: 'foreign' }
  | { kind: 'refused'; reason: 'late' | 'invalid' | 'rejected' | 'duplicate' | 'expired'; detail: string };

export interface Evaluation {
  account: string;
  decision: Decision;
  margin: AccountMargin;
  /** the account's position version at decision time */
  epoch: number;
  /** the account's restriction after this evaluation */
  restriction: RestrictionView;
  /** the restriction change this (committed) decision made, if any */
  change?: RestrictionChange;
}

export type RestrictReason = RestrictJob['reason'];

export interface RestrictionView {
  reduceOnly: boolean;
  /** ms, event time: when a flat account's hold lapses; null while it holds a position or is unrestricted */
  until: number | null;
  /** changes so far (odd = on) */
  version: number;
}

/** One change of an account's restriction (what a `restrict` job delivers). */
export interface RestrictionChange {
  account: string;
  reduceOnly: boolean;
  version: number;
  epoch: number;
  /** ms, event time */
  decidedAt: number;
  reason: RestrictReason;
  pd: number | null;
}

interface Restriction {
  on: boolean;
  version: number;
}

/** Everything a ShardState holds (see `ShardState.saveState`), as plain data (v8-serialisable). */
export interface ShardStateData {
  shard: number;
  shards: number;
  pipeline: PipelineState;
  memory: [string, PolicyMemory][];
  epochs: [string, number][];
  restrictions: [string, { on: boolean; version: number }][];
  nextLapseAt: number;
  clock: number;
}

/** Events that concern one account (and so one shard). */
export function accountOf(ev: CanonicalEvent): string | undefined {
  return 'account' in ev ? ev.account : undefined;
}

/** rate normalisation is irrelevant to the volatility read here */
const NO_RATES = rateNorm(0);
const POSITION_EVENTS = new Set(['fill', 'liquidation', 'adl']);

export class ShardState {
  pipeline: FeaturePipeline;
  private readonly memory = new Map<string, PolicyMemory>();
  private readonly epochs = new Map<string, number>();
  /** accounts ever restricted: their state and version */
  private readonly restrictions = new Map<string, Restriction>();
  /** ms, event time: the earliest moment a flat restricted account's hold may lapse */
  private nextLapseAt = Number.POSITIVE_INFINITY;
  /** ms: newest event time applied (events are applied in stream order) */
  clock = Number.NEGATIVE_INFINITY;

  constructor(
    readonly shard: number,
    readonly shards: number,
    private readonly policy: PolicyConfig,
    /**
     * `snapshots`: keep what `saveState` needs (see FeaturePipelineOptions.recordForSnapshots); `idWindowMs`:
     * ms of event time an account event's id is remembered for (PREEMPT_SHARD_ID_WINDOW_MS; default for ever)
     */
    opts: { snapshots?: boolean; idWindowMs?: number } = {},
  ) {
    this.pipeline = new FeaturePipeline({
      toleranceMs: 0,
      // market events (most of the stream) keep no ids past their own ts: late ones are refused anyway
      marketIdsAtFrontier: true,
      recordForSnapshots: opts.snapshots ?? false,
      ...(opts.idWindowMs === undefined ? {} : { idWindowMs: opts.idWindowMs }),
    });
  }

  /**
   * A copy of the whole state: `ShardState.restore` of it, fed the same entries, gives the same results bit
   * for bit (maps keep their iteration order).
   */
  saveState(): ShardStateData {
    return {
      shard: this.shard,
      shards: this.shards,
      pipeline: this.pipeline.saveState(),
      memory: [...this.memory].map(([a, m]) => [a, structuredClone(m)]),
      epochs: [...this.epochs],
      restrictions: [...this.restrictions].map(([a, r]) => [a, { ...r }]),
      nextLapseAt: this.nextLapseAt,
      clock: this.clock,
    };
  }

  /**
   * The state `s` (from `saveState`) under `policy` (the caller checks it is the policy `s` was built under,
   * or accepts a change of it). Yields to the event loop every `pace.every` candles re-fed or ids re-added,
   * so that a large restore does not starve timers (the lease renewal). The first sweep after it rescans
   * every restricted account (`nextLapseAt` is not taken from `s`, see below).
   */
  static async restore(
    s: ShardStateData,
    policy: PolicyConfig,
    pace = new Pacer(),
    opts: { idWindowMs?: number } = {},
  ): Promise<ShardState> {
    const st = new ShardState(s.shard, s.shards, policy, opts);
    st.pipeline = await FeaturePipeline.restore(s.pipeline, pace, { ...opts, marketIdsAtFrontier: true });
    for (const [a, m] of s.memory) st.memory.set(a, structuredClone(m));
    for (const [a, e] of s.epochs) st.epochs.set(a, e);
    for (const [a, r] of s.restrictions) st.restrictions.set(a, { ...r });
    // the first sweep rescans every restricted account: `s.nextLapseAt` was computed under the policy of
    // the time, and after a policy change (restored from a trimmed log) a shorter hold lapses earlier
    st.nextLapseAt = Number.NEGATIVE_INFINITY;
    st.clock = s.clock;
    return st;
  }

  owns(account: string): boolean {
    return shardOf(account, this.shards) === this.shard;
  }

  /**
   * Apply one logged event. Account events of other shards are skipped. The log's order is the truth:
   * an account event stamped earlier than what was already applied (two producers racing) is applied
   * now, at the newest time the pipeline has released (a fill must never be dropped); a late market event
   * is stale and refused. Except an account event with an id stamped at or before the time through which
   * the id window has forgotten ids (`idsForgottenThroughTs`, kept across restores whatever the window): it
   * cannot be told from a resend of an event already applied, and it is refused (`expired`) rather than risk
   * applying it twice. (A market event that old is refused as late anyway.)
   */
  apply(ev: CanonicalEvent): ApplyResult {
    const account = accountOf(ev);
    if (account !== undefined && !this.owns(account)) return { kind: 'foreign' };
    if (account !== undefined && ev.id !== undefined && ev.ts <= this.pipeline.idsForgottenThroughTs)
      return {
        kind: 'refused',
        reason: 'expired',
        detail: `${ev.type} ${ev.id} at ${ev.ts}: ids of events up to ${this.pipeline.idsForgottenThroughTs} are forgotten (the id window): it cannot be told from a resend of an event already applied`,
      };
    let event = ev;
    let restamped = false;
    // the pipeline's released time, not only the clock: a refused (rejected) event moves it too
    const now = Math.max(this.clock, this.pipeline.releasedTs);
    if (ev.ts < now && account !== undefined) {
      event = { ...ev, ts: now } as CanonicalEvent;
      restamped = true;
    }
    const rejectedBefore = this.pipeline.stats.rejected;
    const outcome = this.pipeline.apply(event);
    if (outcome !== 'accepted')
      return {
        kind: 'refused',
        reason: outcome,
        detail: this.pipeline.stats.lastRefusal ?? `${ev.type} at ${ev.ts}: ${outcome}`,
      };
    if (this.pipeline.stats.rejected > rejectedBefore)
      return {
        kind: 'refused',
        reason: 'rejected',
        detail: this.pipeline.stats.lastRefusal ?? 'refused by the margin core',
      };
    if (event.ts > this.clock) this.clock = event.ts;
    if (account !== undefined && POSITION_EVENTS.has(ev.type))
      this.epochs.set(account, this.epochOf(account) + 1);
    const result: { kind: 'applied'; account?: string; markSymbol?: string; restamped: boolean } = {
      kind: 'applied',
      restamped,
    };
    if (account !== undefined) result.account = account;
    if (ev.type === 'mark') result.markSymbol = ev.symbol;
    return result;
  }

  epochOf(account: string): number {
    return this.epochs.get(account) ?? 0;
  }

  /** The shard's accounts with an open position on `symbol`, sorted (a stable evaluation order). */
  holders(symbol: string): string[] {
    return this.pipeline.book.accountsHolding(symbol).sort();
  }

  /** Feature rows of `accounts` at `ts`, row-major in schema order. */
  features(accounts: readonly string[], ts: number): Float32Array {
    const m = new Float32Array(accounts.length * FEATURE_COUNT);
    accounts.forEach((a, i) => {
      this.pipeline.vector(a, ts, m.subarray(i * FEATURE_COUNT, (i + 1) * FEATURE_COUNT));
    });
    return m;
  }

  /** stdev of 1 h returns (fraction) and visible depth (contracts) per symbol, from the features' market state */
  private marketContext(symbols: Iterable<string>, ts: number) {
    const sigma1h: Record<string, number> = {};
    const depth: Record<string, DepthView> = {};
    for (const s of symbols) {
      const view = this.pipeline.market(s)?.view(ts, NO_RATES, emptyMarketView());
      if (view && !view.volMissing) sigma1h[s] = view.sigmaH;
      const top = this.pipeline.book.bookOf(s);
      if (top) depth[s] = { bidDepth: top.bidDepth, askDepth: top.askDepth };
    }
    return { sigma1h, depth };
  }

  /**
   * Decide for each account with its pd (null = rules only). With `commit` the policy memory advances
   * (a real decision); without, it is a preview (the view of an account between marks). A restriction is
   * lifted when a pd leaves the reduce tier; without a pd, once its hold has lapsed (`sweep`'s rule).
   */
  decide(
    accounts: readonly string[],
    pds: readonly (number | null)[],
    ts: number,
    commit: boolean,
  ): Evaluation[] {
    const book = this.pipeline.book;
    const out: Evaluation[] = [];
    const margins = accounts.map((a) => book.snapshot(a));
    const symbols = new Set<string>();
    for (const m of margins) for (const p of m?.positions ?? []) symbols.add(p.symbol);
    // one market read per symbol for the whole batch (the same instant for every account)
    const { sigma1h, depth } = this.marketContext(symbols, ts);
    accounts.forEach((account, i) => {
      const margin = margins[i];
      if (!margin) return;
      const prev = this.memory.get(account);
      const r = decide(
        {
          margin,
          instruments: book,
          pd: pds[i] ?? null,
          now: ts,
          ...(prev ? { memory: prev } : {}),
          sigma1h,
          depth,
        },
        this.policy,
      );
      let change: RestrictionChange | undefined;
      if (commit) {
        this.memory.set(account, r.memory);
        const on = r.decision.reduceOnly;
        if (on !== this.isRestricted(account)) {
          if (on || r.decision.pd !== null)
            change = this.restrict(account, on, ts, on ? 'pd-reduce-tier' : 'signal-cleared', r.decision.pd);
          // no usable pd (no model, or scoring failed) is not a cleared signal: the restriction holds
          // as for an account that is no longer scored, until `reduceOnlyHoldMs` after it was last flagged
          else if (!reduceOnlyHeld(r.memory, ts, this.policy))
            change = this.restrict(account, false, ts, 'hold-elapsed', null);
        }
      }
      out.push({
        account,
        decision: r.decision,
        margin,
        epoch: this.epochOf(account),
        restriction: this.restrictionOf(account),
        ...(change ? { change } : {}),
      });
    });
    return out;
  }

  isRestricted(account: string): boolean {
    return this.restrictions.get(account)?.on ?? false;
  }

  /** The account's restriction now: on/off, version, and when a flat account's hold lapses. */
  restrictionOf(account: string): RestrictionView {
    const r = this.restrictions.get(account);
    if (!r) return { reduceOnly: false, until: null, version: 0 };
    return {
      reduceOnly: r.on,
      until: r.on && this.isFlat(account) ? this.lapseAt(account) : null,
      version: r.version,
    };
  }

  /** Restrictions of every account ever restricted (for reconciliation with the stored records). */
  restrictionStates(): Map<string, { reduceOnly: boolean; version: number }> {
    return new Map([...this.restrictions].map(([a, r]) => [a, { reduceOnly: r.on, version: r.version }]));
  }

  /**
   * Reconcile the replay's restriction of `account` with its stored record (the last change enqueued; an
   * account without one counts as never restricted). Versions alternate (odd = on), so equal states differ
   * only in how many changes were made: adopt the newer version, no change. Different states: the
   * replay's state wins under a version newer than the stored one. The stored one newer: adopt it and
   * change back (its version + 1). The replay's newer: its changes since were made without effects (on
   * entries already acknowledged) and so never delivered: deliver its state at its own version (no job of
   * that id exists: the stored record is the newest enqueued). Returns that change, if any.
   */
  reconcile(
    account: string,
    stored: { reduceOnly: boolean; version: number },
    ts: number,
  ): RestrictionChange | undefined {
    const mine = this.restrictions.get(account) ?? { on: false, version: 0 };
    if (stored.reduceOnly === mine.on) {
      if (stored.version > mine.version)
        this.restrictions.set(account, { on: mine.on, version: stored.version });
      return undefined;
    }
    if (stored.version < mine.version)
      return {
        account,
        reduceOnly: mine.on,
        version: mine.version,
        epoch: this.epochOf(account),
        decidedAt: ts,
        reason: 'reconciled',
        pd: null,
      };
    this.restrictions.set(account, { on: stored.reduceOnly, version: stored.version });
    return this.restrict(account, mine.on, ts, 'reconciled', null);
  }

  /**
   * Lift the restriction of flat accounts whose hold has lapsed at `ts` (an account that went flat is not
   * scored, so its signal cannot clear): `account`, the subject of the event just applied, is checked at
   * once; every restricted account when `ts` has reached the earliest known lapse. Deterministic in event
   * time, so a replay lifts at the same entries.
   */
  sweep(ts: number, account?: string): RestrictionChange[] {
    const out: RestrictionChange[] = [];
    const check = (a: string): void => {
      if (!this.isRestricted(a) || !this.isFlat(a)) return;
      if (!reduceOnlyHeld(this.memory.get(a), ts, this.policy))
        out.push(this.restrict(a, false, ts, 'hold-elapsed', null));
      else this.nextLapseAt = Math.min(this.nextLapseAt, this.lapseAt(a));
    };
    if (account !== undefined) check(account);
    if (ts >= this.nextLapseAt) {
      this.nextLapseAt = Number.POSITIVE_INFINITY;
      for (const [a, r] of this.restrictions) if (r.on) check(a);
    }
    return out;
  }

  private restrict(
    account: string,
    on: boolean,
    ts: number,
    reason: RestrictReason,
    pd: number | null,
  ): RestrictionChange {
    const version = (this.restrictions.get(account)?.version ?? 0) + 1;
    this.restrictions.set(account, { on, version });
    return { account, reduceOnly: on, version, epoch: this.epochOf(account), decidedAt: ts, reason, pd };
  }

  private isFlat(account: string): boolean {
    return (this.pipeline.book.snapshot(account)?.positions.length ?? 0) === 0;
  }

  /** ms, event time: when a flat restricted account's hold lapses */
  private lapseAt(account: string): number {
    const flaggedAt = this.memory.get(account)?.flaggedAt;
    return typeof flaggedAt === 'number'
      ? flaggedAt + this.policy.reduceOnlyHoldMs
      : Number.NEGATIVE_INFINITY;
  }

  /** What a venue needs to execute on `symbol` now (from the margin book). */
  marketInput(symbol: string): MarketInput | undefined {
    const book = this.pipeline.book;
    const spec = book.instrument(symbol);
    const mark = book.markOf(symbol);
    if (!spec || mark === undefined) return undefined;
    const input: MarketInput = {
      mark,
      contractSize: spec.contractSize,
      liquidationFeeRate: spec.liquidationFeeRate,
    };
    const top = book.bookOf(symbol);
    if (top)
      Object.assign(input, { bid: top.bid, ask: top.ask, bidDepth: top.bidDepth, askDepth: top.askDepth });
    return input;
  }
}
