/**
 * Shapes of the action policy's input and output: the decision, its orders and the reasons (rule
 * that fired plus the numbers it saw), so an operator can see why.
 */
import type { PolicyAction, PolicyMemory } from './policy-config.js';
import type { AccountMargin, InstrumentSpec } from './types.js';

export interface InstrumentLookup {
  instrument(symbol: string): InstrumentSpec | undefined;
}

/** Visible depth (contracts within 1% of mid) on each side of a symbol's book. */
export interface DepthView {
  bidDepth: number; // contracts
  askDepth: number; // contracts
}

export interface DecideInput {
  /** the account's margin state (MarginBook.snapshot) */
  margin: AccountMargin;
  /** instrument parameters (a MarginBook will do) */
  instruments: InstrumentLookup;
  /** probability of default over the model's horizon; missing / non-finite / outside [0, 1] = rules only */
  pd?: number | null;
  /** ms: the decision time (the core has no clock) */
  now: number;
  /** what the previous call returned for this account (omit for a first decision) */
  memory?: PolicyMemory;
  /** stdev of 1h returns per symbol (fraction); missing symbols use config.fallbackSigma1h */
  sigma1h?: Readonly<Record<string, number>>;
  /** visible depth per symbol; a symbol without depth is not depth-capped (reported in the reasons) */
  depth?: Readonly<Record<string, DepthView>>;
}

/** One order the decision asks for: always reduce-only, sized in contracts, valued at the mark. */
export interface OrderPlan {
  symbol: string;
  side: 'buy' | 'sell';
  qty: number; // contracts (> 0)
  notional: number; // USD at the mark
}

export interface Reason {
  /** stable rule id, e.g. 'equity-below-mm', 'pd-reduce-tier', 'cooldown' */
  rule: string;
  /** one human sentence */
  text: string;
  /** the numbers the rule looked at */
  values: Record<string, number | string | boolean | null>;
}

export interface Decision {
  account: string;
  action: PolicyAction;
  /** the rule that decided the action (first of `reasons`) */
  rule: string;
  reasons: Reason[];
  /** pd used; null when rules only */
  pd: number | null;
  rulesOnly: boolean;
  now: number; // ms
  equity: number; // USD
  mm: number; // USD
  im: number; // USD
  /** equity / MM; +Infinity without position */
  marginRatio: number;
  /** reduce-only orders (LIQUIDATE: closes at the mark's estimate; REDUCE: early reduction), else [] */
  orders: OrderPlan[];
  /** USD: estimated equity and MM after the orders fill at the mark (fees included) */
  equityAfter: number;
  mmAfter: number;
  /**
   * the account is restricted to reducing exposure until the next decision (config.reduceOnlyWhileFlagged
   * and the pd reduce tier armed): the venue refuses orders that would increase a position and cancels
   * resting ones that would
   */
  reduceOnly: boolean;
  /**
   * x (account notional / equity): the most leverage the venue lets this account's orders open until the
   * next decision (config.leverageCapAfterReduce and/or the leverage its last REDUCE left, with
   * leverageCapFollowsReduce; within leverageCapHoldMs of that REDUCE); null = none
   */
  leverageCap: number | null;
}

export interface PolicyResult {
  decision: Decision;
  memory: PolicyMemory;
}
