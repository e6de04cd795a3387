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
 * first apply every held event with a ts <= `ts`; afterwards events older than `ts` are late.
 */
import type { CanonicalEvent } from '../events/schema.js';
import { EventGate } from '../events/validate.js';
import { type AccountMargin, MarginBook, type MarginBookOptions, MarginRuleError } from '../margin/index.js';
import { AccountFlows, emptyFlowReading, rateNorm } from './account-flow.js';
import { emptyMarketView, InstrumentMarket, type MarketView } from './market-state.js';
import { ReorderBuffer } from './reorder-buffer.js';
import { leverageOf, type RowContext, writeRow } from './row-writer.js';
import { FEATURE_COUNT, FEATURE_PARAMS, FEATURE_SCHEMA_HASH } from './schema.js';

export interface FeaturePipelineOptions {
  /** ms an event may arrive behind the newest seen and still be applied in order (default 0) */
  toleranceMs?: number;
  /** options of the pipeline's own MarginBook (insurance fund, dynamic margin) */
  margin?: MarginBookOptions;
  /** expected number of accounts (pre-sizes the per-account arrays) */
  expectedAccounts?: number;
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

const NO_PRICES = { prices: false } as const;

export class FeaturePipeline {
  /** the margin state this pipeline drives; read it, do not apply events to it yourself */
  readonly book: MarginBook;
  readonly stats: PipelineStats = {
    received: 0,
    applied: 0,
    duplicates: 0,
    late: 0,
    invalid: 0,
    rejected: 0,
  };
  private readonly gate = new EventGate();
  private readonly order: ReorderBuffer<CanonicalEvent>;
  private readonly flows: AccountFlows;
  private readonly index = new Map<string, number>();
  private readonly ids: string[] = [];
  private readonly markets = new Map<string, InstrumentMarket>();
  private readonly release = (ev: CanonicalEvent): void => this.applyNow(ev);
  private startTs = Number.NaN; // ms: first applied event
  private lastAppliedTs = Number.NEGATIVE_INFINITY; // ms
  private version = 0; // bumps on every applied event (invalidates the market-view cache)
  private viewTs = Number.NaN;
  private viewVersion = -1;
  private readonly views = new Map<string, MarketView>();
  private readonly neutralView = emptyMarketView();

  constructor(opts: FeaturePipelineOptions = {}) {
    this.book = new MarginBook(opts.margin);
    this.order = new ReorderBuffer(opts.toleranceMs ?? 0);
    this.flows = new AccountFlows(opts.expectedAccounts ?? 1024);
  }

  /** Offer one event (already schema-valid, e.g. from readEventsFile or parseEvent). */
  apply(ev: CanonicalEvent): ApplyOutcome {
    this.stats.received++;
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
    if (!this.order.push(ev, this.release)) {
      this.stats.late++;
      return 'late';
    }
    return 'accepted';
  }

  /** Apply everything still held (end of a file). */
  flush(): void {
    this.order.drain(this.release);
  }

  /** Events held for reordering. */
  get buffered(): number {
    return this.order.size;
  }

  /** Account ids in row order (first seen first). */
  accounts(): readonly string[] {
    return this.ids;
  }

  /** Apply held events up to `ts` and close every candle that ended by `ts`. */
  advanceTo(ts: number): void {
    if (ts < this.lastAppliedTs) throw new SnapshotTimeError(ts, this.lastAppliedTs);
    this.order.releaseUpTo(ts, this.release);
    for (const m of this.markets.values()) m.advanceTo(ts);
  }

  snapshot(ts: number, opts: SnapshotOptions = {}): FeatureSnapshot {
    this.advanceTo(ts);
    let rowsIdx: number[] | undefined;
    if (opts.onlyWithPosition) {
      const holders = new Set<string>();
      for (const s of this.book.instrumentSymbols())
        for (const a of this.book.accountsHolding(s)) holders.add(a);
      rowsIdx = [];
      for (let i = 0; i < this.ids.length; i++) if (holders.has(this.ids[i]!)) rowsIdx.push(i);
    }
    const rows = rowsIdx ? rowsIdx.length : this.ids.length;
    const size = rows * FEATURE_COUNT;
    if (opts.into && opts.into.length < size)
      throw new RangeError(`snapshot needs ${size} floats, the matrix given holds ${opts.into.length}`);
    const matrix = opts.into ? opts.into.subarray(0, size) : new Float32Array(size);
    const ctx = this.rowContext(ts);
    const norm = rateNorm(this.observedMs(ts));
    const flow = emptyFlowReading();
    const accounts = new Array<string>(rows);
    for (let r = 0; r < rows; r++) {
      const i = rowsIdx ? rowsIdx[r]! : r;
      const id = this.ids[i]!;
      accounts[r] = id;
      this.flows.read(i, ts, norm, flow);
      writeRow(matrix, r * FEATURE_COUNT, this.book.snapshot(id), flow, ctx);
    }
    return { ts, accounts, matrix, rows, cols: FEATURE_COUNT, schemaHash: FEATURE_SCHEMA_HASH };
  }

  /** One account's row at `ts` (the same code as `snapshot`); unknown accounts get the no-history row. */
  vector(account: string, ts: number, out: Float32Array = new Float32Array(FEATURE_COUNT)): Float32Array {
    this.advanceTo(ts);
    const flow = emptyFlowReading();
    const i = this.index.get(account);
    if (i !== undefined) this.flows.read(i, ts, rateNorm(this.observedMs(ts)), flow);
    writeRow(out, 0, this.book.snapshot(account), flow, this.rowContext(ts));
    return out;
  }

  /** The market state of an instrument (candles, indicators), for inspection. */
  market(symbol: string): InstrumentMarket | undefined {
    return this.markets.get(symbol);
  }

  private observedMs(ts: number): number {
    return Number.isNaN(this.startTs) ? 0 : ts - this.startTs;
  }

  private rowContext(ts: number): RowContext {
    if (ts !== this.viewTs || this.version !== this.viewVersion) {
      this.views.clear();
      this.viewTs = ts;
      this.viewVersion = this.version;
    }
    const norm = rateNorm(this.observedMs(ts));
    return {
      ts,
      coverage: 1 - Math.exp(-this.observedMs(ts) / FEATURE_PARAMS.fastTauMs),
      market: (symbol) => {
        let v = this.views.get(symbol);
        if (v === undefined) {
          const m = this.markets.get(symbol);
          v = m ? m.view(ts, norm, emptyMarketView()) : this.neutralView;
          this.views.set(symbol, v);
        }
        return v;
      },
    };
  }

  private slot(account: string, ts: number): number {
    let i = this.index.get(account);
    if (i === undefined) {
      i = this.flows.add(ts);
      this.index.set(account, i);
      this.ids.push(account);
    }
    return i;
  }

  private applyNow(ev: CanonicalEvent): void {
    try {
      this.dispatch(ev);
    } catch (err) {
      if (!(err instanceof MarginRuleError)) throw err;
      this.stats.rejected++;
      this.stats.lastRefusal = `${ev.type} at ${ev.ts}: ${err.message}`;
      return;
    }
    if (Number.isNaN(this.startTs)) this.startTs = ev.ts;
    if (ev.ts > this.lastAppliedTs) this.lastAppliedTs = ev.ts;
    this.stats.applied++;
    this.version++;
  }

  /** The margin core applies first: when it refuses an event, no feature state has changed. */
  private dispatch(ev: CanonicalEvent): void {
    const book = this.book;
    switch (ev.type) {
      case 'instrument': {
        book.apply(ev);
        let m = this.markets.get(ev.symbol);
        if (!m) {
          m = new InstrumentMarket(ev.symbol);
          this.markets.set(ev.symbol, m);
        }
        m.contractSize = ev.contractSize;
        return;
      }
      case 'mark':
        book.apply(ev);
        this.markets.get(ev.symbol)!.onMark(ev.ts, ev.price);
        return;
      case 'trade':
        book.apply(ev);
        this.markets.get(ev.symbol)!.onTrade(ev.ts, ev.price, ev.qty, ev.aggressor === 'buy');
        return;
      case 'book':
        book.apply(ev);
        this.markets.get(ev.symbol)!.onBook(ev.ts, ev.bid, ev.ask, ev.bidDepth, ev.askDepth);
        return;
      case 'funding':
        book.apply(ev);
        this.markets.get(ev.symbol)!.onFunding(ev.rate);
        return;
      case 'order':
        book.apply(ev);
        this.flows.onOrder(this.slot(ev.account, ev.ts), ev.ts);
        return;
      case 'cancel':
        book.apply(ev);
        this.flows.onCancel(this.slot(ev.account, ev.ts), ev.ts);
        return;
      default:
        this.applyMarginEvent(ev);
    }
  }

  /** fill, liquidation, adl, deposit, withdrawal, bankruptcy: read the account before and after. */
  private applyMarginEvent(ev: CanonicalEvent): void {
    if (!('account' in ev)) return;
    const before = this.book.snapshot(ev.account, NO_PRICES);
    this.book.apply(ev);
    const after = this.book.snapshot(ev.account, NO_PRICES)!;
    const i = this.slot(ev.account, ev.ts);
    const levChange = leverageOfMargin(after) - (before ? leverageOfMargin(before) : 0);
    switch (ev.type) {
      case 'fill': {
        const c = this.book.instrument(ev.symbol)!.contractSize;
        const usd = ev.qty * c * ev.price;
        let doubleDown = 0;
        let cutLoss = 0;
        const prev = before?.positions.find((p) => p.symbol === ev.symbol);
        if (prev && prev.upnl < 0) {
          const adding = prev.qty > 0 === (ev.side === 'buy');
          if (adding) doubleDown = usd;
          else cutLoss = Math.min(ev.qty, Math.abs(prev.qty)) * c * ev.price;
        }
        this.flows.onFill(i, ev.ts, usd, ev.liquidity === 'taker', doubleDown, cutLoss, levChange);
        break;
      }
      case 'deposit':
        this.flows.onTransfer(i, ev.ts, ev.amount, levChange);
        break;
      case 'withdrawal':
        this.flows.onTransfer(i, ev.ts, -ev.amount, levChange);
        break;
      case 'liquidation':
        this.flows.onLiquidation(i, ev.ts);
        break;
      default:
        break; // adl, bankruptcy: only the equity sample below
    }
    this.flows.sampleEquity(i, ev.ts, after.equity);
  }
}

function leverageOfMargin(m: AccountMargin): number {
  return leverageOf(m.notional, m.equity, m.positions.length > 0);
}
