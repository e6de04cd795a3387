/**
 * The margin core's public API: deterministic account state from canonical events (MarginBook),
 * tiered requirements and liquidation prices, the dynamic-margin add-on, and the shared types.
 */
export { cashFromBreakdown } from './account-state.js';
export { marginRatioOf, notionalOf, upnlOf } from './arithmetic.js';
export {
  DEFAULT_DYNAMIC_MARGIN,
  type DynamicMarginConfig,
  dynamicTerm,
  effectiveImr,
} from './dynamic-margin.js';
export { type MarginRuleCode, MarginRuleError } from './errors.js';
export { type AccountInput, type EvaluateOptions, evaluateAccount, type MarketView } from './evaluate.js';
export { bankruptcyPrice, liquidationPrice, type PriceInputs } from './liquidation-price.js';
export { type BookTop, MarginBook, type MarginBookOptions } from './margin-book.js';
export { applyTrade, QTY_EPSILON, type TradeOutcome } from './position-math.js';
export { tierIndexOf, tierMax } from './tiers.js';
export type {
  AccountMargin,
  CashBreakdown,
  InstrumentSpec,
  Position,
  PositionMargin,
  Tier,
  VenueFunds,
} from './types.js';
