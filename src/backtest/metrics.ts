/**
 * What a backtest measures, computed from the canonical events a simulated run emitted (the same events a
 * venue would publish), so every figure can be re-derived from the history file: bad debt and how it was
 * covered, the insurance fund's path, liquidations, early reductions (fills whose orderId carries the
 * preempt prefix), ADL, and the liquidation cascade (peak liquidated notional per minute).
 */
import type { CanonicalEvent } from '../events/schema.js';

/** orderId prefix of the early reductions preempt executes (set by the simulator's risk-engine hook) */
export const REDUCTION_ORDER_PREFIX = 'preempt-';

export interface RunMeasures {
  /** USD: bad debt = bankruptcy deficits (insurance fund drawn + socialised) + what ADL cost its counterparties */
  badDebt: number;
  /** USD: sum of the `bankruptcy` events' deficits (what is left after ADL) */
  bankruptcyDeficits: number;
  /** USD: ADL counterparties' loss against the mark (closed at the bankrupt account's bankruptcy price) */
  adlCost: number;
  /** USD: the part the insurance fund covered */
  insuranceDrawn: number;
  /** USD: the part not covered by the insurance fund: ADL cost + socialised (badDebt - insuranceDrawn) */
  beyondInsurance: number;
  bankruptcies: number;
  /** accounts with at least one liquidation */
  liquidations: number;
  liquidationEvents: number;
  /** USD: sum of qty * price * contractSize over liquidation events */
  liquidatedNotional: number;
  /** USD: the largest liquidated notional within one minute */
  peakLiquidationPerMinute: number;
  /** accounts with at least one early reduction */
  reductions: number;
  reductionFills: number;
  /** USD: notional of early-reduction fills */
  reducedNotional: number;
  /** USD: fees paid on early reductions */
  reductionFees: number;
  adlEvents: number;
  /** USD: notional closed by ADL */
  adlNotional: number;
  /** USD: insurance fund at the end */
  insuranceFundEnd: number;
  /** USD: lowest insurance fund balance during the run */
  insuranceFundMin: number;
}

export class MeasureCollector {
  private readonly contractSize = new Map<string, number>();
  private readonly liquidated = new Set<string>();
  private readonly reduced = new Set<string>();
  private readonly perMinute = new Map<number, number>();
  private readonly marks = new Map<string, number>();
  /** USD per account: notional of its early reductions */
  readonly reducedNotionalByAccount = new Map<string, number>();
  /** USD per account: what its early reductions cost it (fees + slippage against the mark) */
  readonly reductionCostByAccount = new Map<string, number>();
  /** USD per account: the bad debt its bankruptcies left (deficits + the ADL cost that followed them) */
  readonly badDebtByAccount = new Map<string, number>();
  private fund: number;
  /** the account of the latest liquidation event: the ADL legs that follow belong to its bankruptcy */
  private lastLiquidated = '';
  /** [ts ms, insurance fund USD] after every change */
  readonly fundPath: [number, number][] = [];
  /** [minute start ms, liquidated notional USD] */
  readonly m: RunMeasures;

  /**
   * @param onBadDebt called with every amount added to `badDebt`: the bankrupt account (for ADL cost, the
   *   account whose liquidation the ADL legs follow), the event's ts and the USD amount
   */
  constructor(
    initialInsuranceFund: number,
    private readonly onBadDebt?: (account: string, ts: number, usd: number) => void,
  ) {
    this.fund = initialInsuranceFund;
    this.m = {
      badDebt: 0,
      bankruptcyDeficits: 0,
      adlCost: 0,
      insuranceDrawn: 0,
      beyondInsurance: 0,
      bankruptcies: 0,
      liquidations: 0,
      liquidationEvents: 0,
      liquidatedNotional: 0,
      peakLiquidationPerMinute: 0,
      reductions: 0,
      reductionFills: 0,
      reducedNotional: 0,
      reductionFees: 0,
      adlEvents: 0,
      adlNotional: 0,
      insuranceFundEnd: initialInsuranceFund,
      insuranceFundMin: initialInsuranceFund,
    };
  }

  get liquidatedAccounts(): ReadonlySet<string> {
    return this.liquidated;
  }

  get reducedAccounts(): ReadonlySet<string> {
    return this.reduced;
  }

  /** liquidated notional per minute, sorted by minute */
  liquidationsPerMinute(): [number, number][] {
    return [...this.perMinute.entries()].sort((a, b) => a[0] - b[0]);
  }

  private setFund(ts: number, value: number): void {
    this.fund = value;
    this.fundPath.push([ts, value]);
    this.m.insuranceFundEnd = value;
    if (value < this.m.insuranceFundMin) this.m.insuranceFundMin = value;
  }

  private addBadDebt(account: string, ts: number, usd: number): void {
    this.badDebtByAccount.set(account, (this.badDebtByAccount.get(account) ?? 0) + usd);
    this.onBadDebt?.(account, ts, usd);
  }

  add(ev: CanonicalEvent): void {
    const m = this.m;
    switch (ev.type) {
      case 'instrument':
        this.contractSize.set(ev.symbol, ev.contractSize);
        break;
      case 'mark':
        this.marks.set(ev.symbol, ev.price);
        break;
      case 'liquidation': {
        const notional = ev.qty * ev.price * (this.contractSize.get(ev.symbol) ?? 1);
        m.liquidationEvents++;
        this.lastLiquidated = ev.account;
        m.liquidatedNotional += notional;
        if (!this.liquidated.has(ev.account)) {
          this.liquidated.add(ev.account);
          m.liquidations++;
        }
        const minute = Math.floor(ev.ts / 60_000) * 60_000;
        const v = (this.perMinute.get(minute) ?? 0) + notional;
        this.perMinute.set(minute, v);
        if (v > m.peakLiquidationPerMinute) m.peakLiquidationPerMinute = v;
        if (ev.fee > 0) this.setFund(ev.ts, this.fund + ev.fee);
        break;
      }
      case 'bankruptcy': {
        const covered = Math.min(ev.deficit, Math.max(0, this.fund));
        m.bankruptcies++;
        m.badDebt += ev.deficit;
        m.bankruptcyDeficits += ev.deficit;
        this.addBadDebt(ev.account, ev.ts, ev.deficit);
        m.insuranceDrawn += covered;
        m.beyondInsurance += ev.deficit - covered;
        this.setFund(ev.ts, this.fund - covered);
        break;
      }
      case 'adl': {
        const cs = this.contractSize.get(ev.symbol) ?? 1;
        const mark = this.marks.get(ev.symbol) ?? ev.price;
        // the profitable account is closed at the bankruptcy price instead of the mark: its loss is bad debt
        const cost = Math.max(0, (ev.side === 'sell' ? mark - ev.price : ev.price - mark) * ev.qty * cs);
        m.adlEvents++;
        m.adlNotional += ev.qty * ev.price * cs;
        m.adlCost += cost;
        m.badDebt += cost;
        m.beyondInsurance += cost;
        if (cost > 0) this.addBadDebt(this.lastLiquidated, ev.ts, cost);
        break;
      }
      case 'fill':
        if (ev.orderId?.startsWith(REDUCTION_ORDER_PREFIX)) {
          const cs = this.contractSize.get(ev.symbol) ?? 1;
          const notional = ev.qty * ev.price * cs;
          const mark = this.marks.get(ev.symbol) ?? ev.price;
          // selling below / buying above the mark is the slippage the account paid
          const slippage = (ev.side === 'sell' ? mark - ev.price : ev.price - mark) * ev.qty * cs;
          m.reductionFills++;
          m.reducedNotional += notional;
          m.reductionFees += ev.fee;
          this.reducedNotionalByAccount.set(
            ev.account,
            (this.reducedNotionalByAccount.get(ev.account) ?? 0) + notional,
          );
          this.reductionCostByAccount.set(
            ev.account,
            (this.reductionCostByAccount.get(ev.account) ?? 0) + ev.fee + slippage,
          );
          if (!this.reduced.has(ev.account)) {
            this.reduced.add(ev.account);
            m.reductions++;
          }
        }
        break;
      default:
        break;
    }
  }
}

/** USD left by bankruptcies on some accounts, and how many accounts */
export interface AccountsBadDebt {
  accounts: number;
  /** USD */
  badDebt: number;
}

/** bad debt on accounts that left none in the liquidation-only run, by what that run did to them */
export interface NewBadDebt {
  /** accounts it liquidated without bad debt */
  liquidatedThere: AccountsBadDebt;
  /** accounts it never liquidated */
  notLiquidatedThere: AccountsBadDebt;
}

/**
 * The bad debt a run left on accounts that left none in the liquidation-only run, split by what that run did to
 * them: `liquidatedThere`, accounts it liquidated without bad debt (early reduction kept them in the market, and
 * they went bankrupt later), and `notLiquidatedThere`, accounts it never liquidated. Reducing early can create
 * bad debt as well as avoid it; this is the part it created (the share avoided, computed from the two runs' totals,
 * nets it against what was avoided).
 */
export function newBadDebt(
  refLiquidated: ReadonlySet<string>,
  /** USD per account in the liquidation-only run */
  refBadDebt: ReadonlyMap<string, number>,
  /** USD per account in this run */
  runBadDebt: Iterable<readonly [string, number]>,
): NewBadDebt {
  const liquidatedThere: AccountsBadDebt = { accounts: 0, badDebt: 0 };
  const notLiquidatedThere: AccountsBadDebt = { accounts: 0, badDebt: 0 };
  for (const [account, usd] of runBadDebt) {
    if (usd <= 0 || (refBadDebt.get(account) ?? 0) > 0) continue;
    const part = refLiquidated.has(account) ? liquidatedThere : notLiquidatedThere;
    part.accounts++;
    part.badDebt += usd;
  }
  return { liquidatedThere, notLiquidatedThere };
}
