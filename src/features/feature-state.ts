/**
 * The state the feature rows are computed from, and how one (ordered, de-duplicated) event changes it:
 * the margin core (MarginBook, applied first: when it refuses an event with MarginRuleError nothing else
 * has changed), its typed-array mirror, the market state per instrument and the order-flow windows per
 * account. Each event costs O(1) amortised; a margin-changing account event adds one margin-core read
 * after it (for the mirror, the leverage change and the equity sample); the state before it (leverage, the
 * position the fill adds to or cuts) is read from the mirror at the current marks with the core's `upnlOf`
 * and `notionalOf`. A funding event marks the symbol's holders dirty; they are refreshed from the margin
 * core on their next event or before the next snapshot.
 */
import type { CanonicalEvent } from '../events/schema.js';
import {
  type AccountMargin,
  MarginBook,
  type MarginBookOptions,
  notionalOf,
  upnlOf,
} from '../margin/index.js';
import type { MarginBookState } from '../margin/margin-book.js';
import { AccountFlows } from './account-flow.js';
import { MarginMirror, type MarginMirrorState, SLOTS } from './margin-mirror.js';
import { InstrumentMarket, type InstrumentMarketState } from './market-state.js';
import type { Pacer } from './pace.js';
import { leverageOf } from './row-writer.js';

const NO_PRICES = { prices: false } as const;

/** Everything a FeatureState holds (see `FeatureState.state`). */
export interface FeatureStateState {
  book: MarginBookState;
  flows: ReturnType<AccountFlows['state']>;
  mirror: MarginMirrorState;
  /** account ids in row order (the index is rebuilt from it) */
  ids: string[];
  /** by the pipeline's instrument index (the symbol index is rebuilt from it) */
  markets: InstrumentMarketState[];
  startTs: number;
  lastAppliedTs: number;
  version: number;
}

export class FeatureState {
  readonly book: MarginBook;
  readonly flows: AccountFlows;
  readonly mirror: MarginMirror;
  /** account id -> row index (first seen first) */
  readonly index = new Map<string, number>();
  readonly ids: string[] = [];
  /** instruments by the pipeline's instrument index */
  readonly markets: InstrumentMarket[] = [];
  readonly symbols: string[] = [];
  private readonly marketIndex = new Map<string, number>();
  private readonly instIndex = (symbol: string): number => this.marketIndex.get(symbol)!;
  /** ms: first applied event (start of observation) */
  startTs = Number.NaN;
  /** ms: newest applied event */
  lastAppliedTs = Number.NEGATIVE_INFINITY;
  /** bumps on every applied event */
  version = 0;
  // the account before a margin event (scratch, see before())
  private beforeLeverage = 0; // x
  private beforeQty = 0; // contracts of the event's symbol, signed
  private beforeLosing = false; // that position's uPnL < 0

  constructor(
    margin: MarginBookOptions | undefined,
    expectedAccounts: number,
    /** instruments may save the candles their indicators keep (for snapshots) */
    readonly record = false,
  ) {
    this.book = new MarginBook(margin);
    this.flows = new AccountFlows(expectedAccounts);
    this.mirror = new MarginMirror(expectedAccounts);
  }

  /** A copy of the whole state (for shard snapshots; the before* fields are scratch, set on each use). */
  state(): FeatureStateState {
    return {
      book: this.book.state(),
      flows: this.flows.state(),
      mirror: this.mirror.state(),
      ids: [...this.ids],
      markets: this.markets.map((m) => m.state()),
      startTs: this.startTs,
      lastAppliedTs: this.lastAppliedTs,
      version: this.version,
    };
  }

  static async fromState(s: FeatureStateState, pace?: Pacer): Promise<FeatureState> {
    const st = new FeatureState(undefined, 16, true);
    const w = st as unknown as { book: MarginBook; flows: AccountFlows; mirror: MarginMirror };
    w.book = MarginBook.fromState(s.book);
    w.flows = AccountFlows.fromState(s.flows);
    w.mirror = MarginMirror.fromState(s.mirror);
    s.ids.forEach((id, i) => {
      st.ids.push(id);
      st.index.set(id, i);
    });
    for (const [k, m] of s.markets.entries()) {
      st.markets.push(await InstrumentMarket.fromState(m, pace));
      st.symbols.push(m.symbol);
      st.marketIndex.set(m.symbol, k);
    }
    if (st.ids.length !== st.flows.size)
      throw new RangeError(`feature state: ${st.ids.length} accounts, ${st.flows.size} flow records`);
    st.startTs = s.startTs;
    st.lastAppliedTs = s.lastAppliedTs;
    st.version = s.version;
    return st;
  }

  market(symbol: string): InstrumentMarket | undefined {
    const k = this.marketIndex.get(symbol);
    return k === undefined ? undefined : this.markets[k];
  }

  /** Apply one event; throws MarginRuleError (state unchanged) when the margin core refuses it. */
  apply(ev: CanonicalEvent): void {
    this.dispatch(ev);
    if (Number.isNaN(this.startTs)) this.startTs = ev.ts;
    if (ev.ts > this.lastAppliedTs) this.lastAppliedTs = ev.ts;
    this.version++;
  }

  private slot(account: string, ts: number): number {
    let i = this.index.get(account);
    if (i === undefined) {
      i = this.flows.add(ts);
      this.mirror.ensure(i);
      this.index.set(account, i);
      this.ids.push(account);
    }
    return i;
  }

  private dispatch(ev: CanonicalEvent): void {
    const book = this.book;
    switch (ev.type) {
      case 'instrument': {
        book.apply(ev);
        let k = this.marketIndex.get(ev.symbol);
        if (k === undefined) {
          k = this.markets.length;
          this.markets.push(new InstrumentMarket(ev.symbol, this.record));
          this.symbols.push(ev.symbol);
          this.marketIndex.set(ev.symbol, k);
        }
        this.markets[k]!.contractSize = ev.contractSize;
        return;
      }
      case 'mark':
        book.apply(ev);
        this.market(ev.symbol)!.onMark(ev.ts, ev.price);
        return;
      case 'trade':
        book.apply(ev);
        this.market(ev.symbol)!.onTrade(ev.ts, ev.price, ev.qty, ev.aggressor === 'buy');
        return;
      case 'book':
        book.apply(ev);
        this.market(ev.symbol)!.onBook(ev.ts, ev.bid, ev.ask, ev.bidDepth, ev.askDepth);
        return;
      case 'funding':
        book.apply(ev);
        this.market(ev.symbol)!.onFunding(ev.rate);
        for (const id of book.accountsHolding(ev.symbol)) this.mirror.markDirty(this.index.get(id)!);
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

  /** Refresh the accounts whose cash moved by funding since their last event. */
  refreshDirty(): void {
    const m = this.mirror;
    for (const i of m.dirtyList)
      if (m.dirty[i] === 1) m.set(i, this.book.snapshot(this.ids[i]!, NO_PRICES)!, this.instIndex);
    m.dirtyList = [];
  }

  /**
   * Leverage of account `i` and its position on instrument `inst` at the current marks, from the mirror
   * (clean: refreshed after the account's last event), into the before* scratch fields.
   */
  private before(i: number | undefined, inst: number): void {
    this.beforeLeverage = 0;
    this.beforeQty = 0;
    this.beforeLosing = false;
    if (i === undefined) return;
    const m = this.mirror;
    if (m.dirty[i] === 1) m.set(i, this.book.snapshot(this.ids[i]!, NO_PRICES)!, this.instIndex);
    const n = m.count[i]!;
    if (n === 0) return;
    let upnl = 0; // USD
    let notional = 0; // USD
    const overflow = n > SLOTS ? m.overflow.get(i)! : undefined;
    for (let k = 0; k < n; k++) {
      const o = i * SLOTS + k;
      const pi = overflow ? overflow[k]!.inst : m.inst[o]!;
      const q = overflow ? overflow[k]!.qty : m.qty[o]!;
      const e = overflow ? overflow[k]!.entry : m.entry[o]!;
      const c = this.markets[pi]!.contractSize;
      const mark = this.book.markOf(this.symbols[pi]!)!;
      const pu = upnlOf(q, e, c, mark);
      upnl += pu;
      notional += notionalOf(q, c, mark);
      if (pi === inst) {
        this.beforeQty = q;
        this.beforeLosing = pu < 0;
      }
    }
    this.beforeLeverage = leverageOf(notional, m.cash[i]! + upnl, true);
  }

  /** fill, liquidation, adl, deposit, withdrawal, bankruptcy: the account before (mirror) and after (core). */
  private applyMarginEvent(ev: CanonicalEvent): void {
    if (!('account' in ev)) return;
    const known = this.index.get(ev.account);
    const inst = 'symbol' in ev ? this.marketIndex.get(ev.symbol)! : -1;
    this.before(known, inst);
    this.book.apply(ev);
    const after = this.book.snapshot(ev.account, NO_PRICES)!;
    const i = known ?? this.slot(ev.account, ev.ts);
    this.mirror.set(i, after, this.instIndex);
    const levChange = leverageOfMargin(after) - this.beforeLeverage;
    switch (ev.type) {
      case 'fill': {
        const c = this.markets[inst]!.contractSize;
        const usd = ev.qty * c * ev.price;
        let doubleDown = 0;
        let cutLoss = 0;
        const prevQty = this.beforeQty;
        if (prevQty !== 0 && this.beforeLosing) {
          const adding = prevQty > 0 === (ev.side === 'buy');
          if (adding) doubleDown = usd;
          else cutLoss = Math.min(ev.qty, Math.abs(prevQty)) * c * ev.price;
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
