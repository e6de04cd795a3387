/**
 * MarginBook: the deterministic margin state built from canonical events — instruments, latest marks,
 * accounts (cash, breakdown, positions) and the venue's funds (insurance fund, fees, socialised loss).
 * `apply` takes any canonical event; one that is invalid for the state throws `MarginRuleError` and
 * changes nothing. No clock, no I/O: replaying the same events gives the same state.
 */
import type { BookEv, CanonicalEvent, FundingEv, InstrumentEv } from '../events/schema.js';
import {
  type AccountState,
  cloneAccount,
  commitTrade,
  newAccount,
  planTrade,
  requireFinite,
} from './account-state.js';
import { DEFAULT_DYNAMIC_MARGIN, type DynamicMarginConfig, dynamicTerm } from './dynamic-margin.js';
import { MarginRuleError } from './errors.js';
import { type EvaluateOptions, evaluateAccount, type MarketView } from './evaluate.js';
import { checkEventFields } from './event-checks.js';
import type { AccountMargin, InstrumentSpec, Position, VenueFunds } from './types.js';

export interface MarginBookOptions {
  /** USD: the insurance fund's opening balance (default 0) */
  insuranceFund?: number;
  /** dynamic initial-margin add-on (default off) */
  /** dynamic margin; fields not given keep their defaults (DEFAULT_DYNAMIC_MARGIN: off, z 2.33, 1 h) */
  dynamicMargin?: Partial<DynamicMarginConfig>;
}

/** Latest top of book for a symbol (market context for the policy's depth cap). */
export type BookTop = Pick<BookEv, 'bid' | 'ask' | 'bidDepth' | 'askDepth' | 'ts'>;

/** Everything a MarginBook holds, maps as entry lists in their iteration order (see `MarginBook.state`). */
export interface MarginBookState {
  instruments: [string, InstrumentSpec][];
  marks: [string, number][];
  lastPrices: [string, number][];
  books: [string, BookTop][];
  volatility: [string, number][];
  accounts: { id: string; cash: number; breakdown: AccountState['breakdown']; positions: Position[] }[];
  holders: [string, string[]][];
  funds: VenueFunds;
  dynamic: DynamicMarginConfig;
  lastTs: number;
}

export class MarginBook implements MarketView {
  private readonly instruments = new Map<string, InstrumentSpec>();
  private readonly marks = new Map<string, number>();
  private readonly lastPrices = new Map<string, number>();
  private readonly books = new Map<string, BookTop>();
  private readonly volatility = new Map<string, number>();
  private readonly accounts = new Map<string, AccountState>();
  private readonly holders = new Map<string, Set<string>>();
  private readonly funds: VenueFunds;
  private readonly dynamic: DynamicMarginConfig;
  /** ms: ts of the last applied event */
  lastTs = Number.NEGATIVE_INFINITY;

  constructor(opts: MarginBookOptions = {}) {
    const fund = opts.insuranceFund ?? 0;
    if (!Number.isFinite(fund) || fund < 0)
      throw new MarginRuleError('BAD_INPUT', 'insuranceFund must be a finite number >= 0', 'insuranceFund');
    this.funds = {
      insuranceFund: fund,
      feesCollected: 0,
      liquidationFeesCollected: 0,
      insuranceCovered: 0,
      socialisedLoss: 0,
    };
    // merged over the defaults: { enabled: true } alone used to leave z and horizonHours undefined, so the
    // dynamic term was NaN and the venue's rate applied (dynamic margin silently off)
    this.dynamic = { ...DEFAULT_DYNAMIC_MARGIN, ...opts.dynamicMargin };
    const { z, horizonHours } = this.dynamic;
    if (!(Number.isFinite(z) && z >= 0))
      throw new MarginRuleError(
        'BAD_INPUT',
        `dynamicMargin.z must be a finite number >= 0 (got ${z})`,
        'dynamicMargin',
      );
    if (!(Number.isFinite(horizonHours) && horizonHours > 0))
      throw new MarginRuleError(
        'BAD_INPUT',
        `dynamicMargin.horizonHours must be a finite number > 0 (got ${horizonHours})`,
        'dynamicMargin',
      );
  }

  apply(ev: CanonicalEvent): void {
    checkEventFields(ev);
    if (ev.type !== 'instrument' && 'symbol' in ev && !this.instruments.has(ev.symbol))
      throw new MarginRuleError('UNDECLARED_INSTRUMENT', `undeclared instrument "${ev.symbol}"`, 'symbol');
    switch (ev.type) {
      case 'instrument':
        this.applyInstrument(ev);
        break;
      case 'mark':
        this.marks.set(ev.symbol, ev.price);
        break;
      case 'trade':
        this.lastPrices.set(ev.symbol, ev.price);
        break;
      case 'book':
        this.books.set(ev.symbol, {
          bid: ev.bid,
          ask: ev.ask,
          bidDepth: ev.bidDepth,
          askDepth: ev.askDepth,
          ts: ev.ts,
        });
        break;
      case 'funding':
        this.applyFunding(ev);
        break;
      case 'deposit':
      case 'withdrawal': {
        const acct = this.accounts.get(ev.account) ?? newAccount(ev.account);
        const sign = ev.type === 'deposit' ? 1 : -1;
        const cash = acct.cash + sign * ev.amount;
        requireFinite(cash, 'cash');
        acct.cash = cash;
        if (ev.type === 'deposit') acct.breakdown.deposits += ev.amount;
        else acct.breakdown.withdrawals += ev.amount;
        this.accounts.set(ev.account, acct);
        break;
      }
      case 'fill':
      case 'liquidation':
      case 'adl': {
        const spec = this.instruments.get(ev.symbol)!;
        const acct = this.accounts.get(ev.account) ?? newAccount(ev.account);
        const fee = ev.type === 'adl' ? 0 : ev.fee;
        const signed = ev.side === 'buy' ? ev.qty : -ev.qty;
        const plan = planTrade(
          acct,
          ev.symbol,
          signed,
          ev.price,
          spec.contractSize,
          fee,
          ev.type === 'liquidation',
        );
        const nextFunds =
          ev.type === 'fill' ? this.funds.feesCollected + fee : this.funds.insuranceFund + fee;
        requireFinite(nextFunds, ev.type === 'fill' ? 'feesCollected' : 'insuranceFund');
        commitTrade(acct, plan);
        this.accounts.set(ev.account, acct);
        this.trackHolder(ev.symbol, ev.account, plan.qty !== 0);
        this.lastPrices.set(ev.symbol, ev.price);
        if (ev.type === 'fill') this.funds.feesCollected = nextFunds;
        else if (ev.type === 'liquidation') {
          this.funds.insuranceFund = nextFunds;
          this.funds.liquidationFeesCollected += fee;
        }
        break;
      }
      case 'bankruptcy': {
        const acct = this.accounts.get(ev.account);
        if (!acct) throw new MarginRuleError('UNKNOWN_ACCOUNT', `no account "${ev.account}"`, 'account');
        const covered = Math.min(ev.deficit, this.funds.insuranceFund);
        acct.breakdown.bankruptcyCredits -= acct.cash;
        acct.cash = 0;
        this.funds.insuranceFund -= covered;
        this.funds.insuranceCovered += covered;
        this.funds.socialisedLoss += ev.deficit - covered;
        break;
      }
      default:
        break; // order, cancel: no effect on margin state
    }
    if (ev.ts > this.lastTs) this.lastTs = ev.ts;
  }

  private applyInstrument(ev: InstrumentEv): void {
    this.instruments.set(ev.symbol, {
      symbol: ev.symbol,
      base: ev.base,
      contractSize: ev.contractSize,
      tiers: ev.tiers.map((t) => ({ ...t })),
      liquidationFeeRate: ev.liquidationFeeRate,
      since: ev.ts,
    });
  }

  /** Every open position pays `qty * contractSize * mark * rate` (longs pay shorts when rate > 0). */
  private applyFunding(ev: FundingEv): void {
    const ids = this.holders.get(ev.symbol);
    if (!ids || ids.size === 0) return;
    const mark = this.markOf(ev.symbol);
    if (mark === undefined)
      throw new MarginRuleError('NO_MARK', `no mark for "${ev.symbol}" to settle funding`);
    const c = this.instruments.get(ev.symbol)!.contractSize;
    const payments: Array<[AccountState, number]> = [];
    for (const id of ids) {
      const acct = this.accounts.get(id)!;
      const pay = acct.positions.get(ev.symbol)!.qty * c * mark * ev.rate;
      requireFinite(acct.cash - pay, 'cash');
      payments.push([acct, pay]);
    }
    for (const [acct, pay] of payments) {
      acct.cash -= pay;
      acct.breakdown.fundingNet -= pay;
    }
  }

  private trackHolder(symbol: string, account: string, holds: boolean): void {
    let set = this.holders.get(symbol);
    if (holds) {
      if (!set) {
        set = new Set();
        this.holders.set(symbol, set);
      }
      set.add(account);
    } else set?.delete(account);
  }

  /** The margin state of one account at the latest marks; undefined for an account never seen. */
  snapshot(accountId: string, opts?: EvaluateOptions): AccountMargin | undefined {
    const acct = this.accounts.get(accountId);
    if (!acct) return undefined;
    const input = {
      id: acct.id,
      cash: acct.cash,
      breakdown: acct.breakdown,
      positions: acct.positions.values(),
    };
    return evaluateAccount(input, this, opts);
  }

  accountIds(): string[] {
    return [...this.accounts.keys()];
  }

  /** The raw positions of an account (a copy), in evaluation order. */
  positionsOf(accountId: string): Position[] {
    const acct = this.accounts.get(accountId);
    return acct ? [...acct.positions.values()].map((p) => ({ ...p })) : [];
  }

  /** USD: the latest mark, else the last traded price (fill or public trade), else undefined. */
  markOf(symbol: string): number | undefined {
    return this.marks.get(symbol) ?? this.lastPrices.get(symbol);
  }

  /** true when a `mark` event was seen for the symbol (markOf may fall back to a trade price). */
  hasMark(symbol: string): boolean {
    return this.marks.has(symbol);
  }

  instrument(symbol: string): InstrumentSpec | undefined {
    return this.instruments.get(symbol);
  }

  instrumentSymbols(): string[] {
    return [...this.instruments.keys()];
  }

  bookOf(symbol: string): BookTop | undefined {
    return this.books.get(symbol);
  }

  /** Accounts with an open position on a symbol (to re-evaluate on its mark). */
  accountsHolding(symbol: string): string[] {
    return [...(this.holders.get(symbol) ?? [])];
  }

  /** Set the realised volatility (stdev of 1h returns, fraction) used by the dynamic margin add-on. */
  setVolatility(symbol: string, sigma1h: number): void {
    if (!Number.isFinite(sigma1h) || sigma1h < 0)
      throw new MarginRuleError(
        'BAD_INPUT',
        `volatility must be finite and >= 0 (got ${sigma1h})`,
        'sigma1h',
      );
    this.volatility.set(symbol, sigma1h);
  }

  dynamicTermOf(symbol: string): number {
    return dynamicTerm(this.dynamic, this.volatility.get(symbol));
  }

  dynamicMarginConfig(): Readonly<DynamicMarginConfig> {
    return this.dynamic;
  }

  venueFunds(): VenueFunds {
    return { ...this.funds };
  }

  /** A deep copy (for what-if evaluation and tests). */
  clone(): MarginBook {
    return this.copy(this.accounts.keys());
  }

  /** A deep copy holding only the named accounts (market state and venue funds copied whole). */
  subset(accountIds: Iterable<string>): MarginBook {
    return this.copy(accountIds);
  }

  private copy(ids: Iterable<string>): MarginBook {
    const b = new MarginBook({ insuranceFund: 0, dynamicMargin: this.dynamic });
    for (const [k, v] of this.instruments)
      b.instruments.set(k, { ...v, tiers: v.tiers.map((t) => ({ ...t })) });
    for (const [k, v] of this.marks) b.marks.set(k, v);
    for (const [k, v] of this.lastPrices) b.lastPrices.set(k, v);
    for (const [k, v] of this.books) b.books.set(k, { ...v });
    for (const [k, v] of this.volatility) b.volatility.set(k, v);
    for (const id of ids) {
      const acct = this.accounts.get(id);
      if (!acct) continue;
      b.accounts.set(id, cloneAccount(acct));
      for (const symbol of acct.positions.keys()) b.trackHolder(symbol, id, true);
    }
    Object.assign(b.funds, this.funds);
    b.lastTs = this.lastTs;
    return b;
  }

  /**
   * A copy of the whole state (for shard snapshots). Iteration orders are kept: evaluation order, and so
   * float rounding, follows them.
   */
  state(): MarginBookState {
    return {
      instruments: [...this.instruments].map(([k, v]) => [
        k,
        { ...v, tiers: v.tiers.map((t) => ({ ...t })) },
      ]),
      marks: [...this.marks],
      lastPrices: [...this.lastPrices],
      books: [...this.books].map(([k, v]) => [k, { ...v }]),
      volatility: [...this.volatility],
      accounts: [...this.accounts.values()].map((a) => ({
        id: a.id,
        cash: a.cash,
        breakdown: { ...a.breakdown },
        positions: [...a.positions.values()].map((p) => ({ ...p })),
      })),
      holders: [...this.holders].map(([k, v]) => [k, [...v]]),
      funds: { ...this.funds },
      dynamic: { ...this.dynamic },
      lastTs: this.lastTs,
    };
  }

  static fromState(s: MarginBookState): MarginBook {
    const b = new MarginBook({ insuranceFund: 0, dynamicMargin: s.dynamic });
    for (const [k, v] of s.instruments) b.instruments.set(k, { ...v, tiers: v.tiers.map((t) => ({ ...t })) });
    for (const [k, v] of s.marks) b.marks.set(k, v);
    for (const [k, v] of s.lastPrices) b.lastPrices.set(k, v);
    for (const [k, v] of s.books) b.books.set(k, { ...v });
    for (const [k, v] of s.volatility) b.volatility.set(k, v);
    for (const a of s.accounts)
      b.accounts.set(a.id, {
        id: a.id,
        cash: a.cash,
        breakdown: { ...a.breakdown },
        positions: new Map(a.positions.map((p) => [p.symbol, { ...p }])),
      });
    for (const [k, v] of s.holders) b.holders.set(k, new Set(v));
    Object.assign(b.funds, s.funds);
    b.lastTs = s.lastTs;
    return b;
  }

  /** A plain, deterministic dump of the whole state (for equality checks and debugging). */
  toJSON(): unknown {
    return {
      instruments: [...this.instruments.values()],
      marks: [...this.marks],
      lastPrices: [...this.lastPrices],
      accounts: [...this.accounts.values()].map((a) => ({
        id: a.id,
        cash: a.cash,
        breakdown: a.breakdown,
        positions: [...a.positions.values()],
      })),
      funds: this.funds,
    };
  }
}
