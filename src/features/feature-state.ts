/**
 * The state the feature rows are computed from, and how one (ordered, de-duplicated) event changes it:
 * the margin core (MarginBook, applied first: when it refuses an event with MarginRuleError nothing else
 * has changed), its typed-array mirror, the market state per instrument and the order-flow windows per
 * account. Each event costs O(1) amortised; a margin-changing account event adds one margin-core read
 * before and one after (for doubling down, leverage change, the equity sample and the mirror); a funding
 * event refreshes the mirrored cash of the symbol's holders.
 */
import type { CanonicalEvent } from '../events/schema.js';
import { type AccountMargin, MarginBook, type MarginBookOptions } from '../margin/index.js';
import { AccountFlows } from './account-flow.js';
import { MarginMirror } from './margin-mirror.js';
import { InstrumentMarket } from './market-state.js';
import { leverageOf } from './row-writer.js';

const NO_PRICES = { prices: false } as const;

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

  constructor(margin: MarginBookOptions | undefined, expectedAccounts: number) {
    this.book = new MarginBook(margin);
    this.flows = new AccountFlows(expectedAccounts);
    this.mirror = new MarginMirror(expectedAccounts);
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
          this.markets.push(new InstrumentMarket(ev.symbol));
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
        for (const id of book.accountsHolding(ev.symbol))
          this.mirror.setCash(this.index.get(id)!, book.snapshot(id, NO_PRICES)!.cash);
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
    this.mirror.set(i, after, this.instIndex);
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
