/**
 * Simulated traders: their behaviours, their per-trader parameters and state, the view of the market and
 * of their own account they decide from, and the intents they hand to the venue (the venue turns intents
 * into canonical events). A trader never touches the margin state directly.
 */
import type { AccountMargin, PositionMargin } from '../../margin/index.js';
import type { Rng } from '../random.js';

export const BEHAVIOURS = [
  'trend',
  'meanReversion',
  'martingale',
  'gambler',
  'hedged',
  'careful',
  'withdrawer',
  'marketMaker',
  'cancelHeavy',
] as const;
export type Behaviour = (typeof BEHAVIOURS)[number];

export interface BehaviourParams {
  /** minutes of price history the signal looks at */
  lookback: number;
  /** signal threshold, in standard deviations of the lookback's move */
  threshold: number;
  /** adverse price move (fraction) at which the trader cuts the position; Infinity = never */
  stopLoss: number;
  /** favourable price move (fraction) at which the trader takes profit; Infinity = never */
  takeProfit: number;
  /** martingale / averaging down: adverse move (fraction) between two additions */
  addStep: number;
  /** the most additions to a losing position */
  maxAdds: number;
  /** margin ratio (equity / MM) under which the trader reacts to a margin call */
  callLevel: number;
  /** probability per decision of withdrawing collateral while exposed */
  withdrawProb: number;
  /** drawdown from peak equity (fraction) at which the trader may panic and close */
  panicDrawdown: number;
  /** market makers: half-spread quoted, bps of mark */
  quoteBps: number;
  /** market makers: volatility ratio above which quotes are pulled */
  pullVolRatio: number;
  /** cancel-heavy placers: share of resting orders cancelled at each decision */
  cancelShare: number;
  /** probability of coming back (re-depositing) after being wiped out */
  comeback: number;
}

export interface RestingOrder {
  orderId: string;
  symbol: number;
  side: 'buy' | 'sell';
  qty: number; // contracts
  price: number; // USD
  /** minute placed */
  placedAt: number;
}

export class Trader {
  /** USD outside the venue, from which deposits come and to which withdrawals go */
  reserve: number;
  /** current target leverage (notional / equity) */
  leverage: number;
  /** continuous simulated minutes of the next decision */
  nextAt: number;
  funded = false;
  gone = false;
  peakEquity = 0; // USD
  adds = 0;
  liquidations = 0;
  lastLiquidatedMinute = -1;
  orderSeq = 0;
  readonly resting = new Map<string, RestingOrder>();

  constructor(
    readonly index: number,
    readonly id: string,
    readonly behaviour: Behaviour,
    /** decisions (sizes, directions, reactions) */
    readonly rng: Rng,
    /** decision times only, so that the schedule does not depend on what the decisions drew */
    readonly timing: Rng,
    /** instrument index traded */
    readonly symbol: number,
    /** second instrument (hedged accounts), -1 when none */
    readonly hedgeSymbol: number,
    /** USD: first deposit */
    readonly capital: number,
    reserve: number,
    /** leverage drawn at creation */
    readonly baseLeverage: number,
    /** mean minutes between decisions at calm */
    readonly meanInterval: number,
    readonly params: BehaviourParams,
    joinAt: number,
  ) {
    this.reserve = reserve;
    this.leverage = baseLeverage;
    this.nextAt = joinAt;
  }

  nextOrderId(): string {
    this.orderSeq++;
    return `${this.id}-o${this.orderSeq}`;
  }
}

export type Intent =
  | { kind: 'market'; symbol: number; side: 'buy' | 'sell'; qty: number; reduceOnly: boolean }
  | { kind: 'limit'; symbol: number; side: 'buy' | 'sell'; qty: number; price: number }
  | { kind: 'cancel'; orderId: string }
  | { kind: 'deposit'; amount: number; initial?: boolean }
  | { kind: 'withdraw'; amount: number };

/** What a trader sees when it decides. */
export interface TraderView {
  minute: number;
  /** the account's margin state; undefined before the first deposit */
  margin: AccountMargin | undefined;
  mark(symbol: number): number;
  /** log return over the last `minutes`, divided by the volatility expected over that span */
  momentum(symbol: number, minutes: number): number;
  /** current one-minute volatility / its normal level */
  volRatio(symbol: number): number;
  lotSize(symbol: number): number;
  /** 1 / the first tier's initial margin rate */
  maxLeverage(symbol: number): number;
  /** symbols in the scenario */
  symbolCount: number;
  position(symbol: number): PositionMargin | undefined;
  /** USD that may be withdrawn now (venue rule: cash, and equity - IM) */
  withdrawable(): number;
}
