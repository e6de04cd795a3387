/**
 * Shared shapes of the simulated venue: the event sink, the risk-engine hook (what a backtest plugs in
 * to act before the venue's rules do), fee schedule and the run summary.
 */
import type { CanonicalEvent } from '../../events/schema.js';
import type { MarginBook } from '../../margin/index.js';

/** Where the simulator's events go. `write` is called in file order; `flush` is awaited once per minute. */
export interface EventSink {
  write(event: CanonicalEvent): void;
  /** backpressure: resolves when the sink can take more */
  flush?(): Promise<void>;
}

/** One instrument's market at the current minute, as the risk engine sees it. */
export interface MarketSnapshot {
  symbol: string;
  mark: number; // USD
  bid: number; // USD
  ask: number; // USD
  /** contracts within 1% of mid, after what executions consumed */
  bidDepth: number;
  askDepth: number;
  /** standard deviation of 1 h log returns implied by the current one-minute EWMA volatility (fraction) */
  sigma1h: number;
}

export interface RiskEngineContext {
  /** ms: the minute's timestamp (marks, funding and the venue's liquidations of the minute are applied) */
  ts: number;
  minute: number;
  /** the venue's margin state; read it, never apply events to it */
  book: MarginBook;
  market: readonly MarketSnapshot[];
}

/** An early reduction: close `qty` contracts (reduce-only, clamped to the position) of `account` on `symbol`. */
export interface EarlyReduction {
  account: string;
  symbol: string;
  qty: number; // contracts > 0
}

/**
 * What the risk engine asks of the venue at one look: early reductions, and (optionally) the accounts
 * restricted to reduce-only until its next look (the set replaces the previous one; an account newly
 * restricted has its resting orders that would increase a position cancelled, and while restricted the
 * venue refuses orders that would increase a position and cancels a resting order instead of filling it if
 * the fill would increase the position; "increase" is |position after| > |position before|).
 */
export interface RiskActions {
  reductions: readonly EarlyReduction[];
  reduceOnly?: readonly string[];
  /**
   * accounts whose orders may not take their notional above `maxLeverage` x equity until the next look (the
   * list replaces the previous one): the venue sizes such a market order down to the cap, refuses such a
   * limit order, and cancels a resting order instead of filling it if the fill would breach the cap
   */
  leverageCaps?: readonly LeverageCap[];
}

export interface LeverageCap {
  account: string;
  /** x: account notional / equity (0: nothing may be opened) */
  maxLeverage: number;
}

export type RiskEngine = (
  ctx: RiskEngineContext,
) => readonly EarlyReduction[] | RiskActions | Promise<readonly EarlyReduction[] | RiskActions>;

export interface FeeSchedule {
  /** fraction of notional */
  taker: number;
  maker: number;
  /** market makers' maker fee (negative = rebate) */
  marketMakerMaker: number;
}

export const DEFAULT_FEES: FeeSchedule = { taker: 0.0005, maker: 0.0002, marketMakerMaker: -0.00005 };

/** Prefix of the orderIds of the risk engine's reductions (`preempt-<n>`). */
export const PREEMPT_ORDER_PREFIX = 'preempt-';

export interface ReduceOnlySummary {
  /** accounts restricted at least once */
  restrictedAccounts: number;
  /** orders refused because they would have increased a restricted account's position */
  rejectedOrders: number;
  /** USD at the mark: notional of those orders (as asked, before the venue's IM sizing) */
  rejectedNotional: number;
  /** resting orders cancelled by the restriction (when it began, or instead of a risk-increasing fill) */
  cancelledOrders: number;
}

export interface LeverageCapSummary {
  /** accounts capped at least once */
  cappedAccounts: number;
  /** market orders sized down to the cap, and limit orders refused for it */
  cutOrders: number;
  /** USD at the mark: notional those orders asked for beyond what the cap let through */
  cutNotional: number;
  /** resting orders cancelled instead of a fill that would have breached the cap */
  cancelledOrders: number;
}

export interface BehaviourSummary {
  accounts: number;
  /** accounts liquidated at least once */
  liquidated: number;
  bankrupt: number;
}

export interface SimulationSummary {
  scenario: string;
  seed: number;
  accounts: number;
  minutes: number;
  events: number;
  eventsByType: Record<string, number>;
  /** liquidation events */
  liquidations: number;
  /** accounts liquidated at least once */
  liquidatedAccounts: number;
  /** USD of notional closed by liquidations (at their execution prices) */
  liquidatedNotional: number;
  bankruptcies: number;
  /** USD: sum of bankruptcy deficits (covered by the insurance fund, else socialised) */
  badDebt: number;
  adlEvents: number;
  /** USD */
  insuranceFundStart: number;
  insuranceFundEnd: number;
  insuranceCovered: number;
  socialisedLoss: number;
  /** the risk engine's early reductions */
  reductions: number;
  reducedNotional: number; // USD
  /** peak liquidated notional in one minute, USD */
  peakLiquidatedNotionalPerMinute: number;
  /** the risk engine's reduce-only restrictions (all zero without them) */
  reduceOnly: ReduceOnlySummary;
  /** the risk engine's leverage caps (all zero without them) */
  leverageCap: LeverageCapSummary;
  byBehaviour: Record<string, BehaviourSummary>;
  funding: { history: number; premium: number };
}
