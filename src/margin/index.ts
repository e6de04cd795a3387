/**
 * The margin core's public API: deterministic account state from canonical events (MarginBook),
 * tiered requirements and liquidation prices, the dynamic-margin add-on, the action policy (`decide`),
 * the default loss waterfall (`runWaterfall`) with its ledger, and the typed-array batch evaluator.
 */
export { cashFromBreakdown } from './account-state.js';
export { type AdlCandidate, adlQueue } from './adl-ranking.js';
export { marginRatioOf, notionalOf, upnlOf } from './arithmetic.js';
export {
  allocateBatchOutput,
  type BatchOutput,
  batchFromBook,
  evaluateBatch,
  type InstrumentTable,
  instrumentTable,
  type MarginBatch,
  setBatchMark,
} from './batch.js';
export {
  DEFAULT_DYNAMIC_MARGIN,
  type DynamicMarginConfig,
  dynamicTerm,
  effectiveImr,
} from './dynamic-margin.js';
export { type MarginRuleCode, MarginRuleError } from './errors.js';
export { type AccountInput, type EvaluateOptions, evaluateAccount, type MarketView } from './evaluate.js';
export {
  bookValue,
  type ConservationReport,
  conservationReport,
  Ledger,
  type LedgerEntry,
  type LedgerKind,
  ledgerBalances,
  type Party,
} from './ledger.js';
export { bankruptcyPrice, liquidationPrice, type PriceInputs } from './liquidation-price.js';
export { type LiquidationSizing, planLiquidation } from './liquidation-sizing.js';
export { type BookTop, MarginBook, type MarginBookOptions } from './margin-book.js';
export { decide, nextPdLevel, reduceGateOpen, reduceTierHeldByRatio, usablePd } from './policy.js';
export {
  DEFAULT_POLICY_CONFIG,
  initialMemory,
  type PolicyAction,
  type PolicyConfig,
  type PolicyMemory,
  resolvePolicyConfig,
} from './policy-config.js';
export type {
  DecideInput,
  Decision,
  DepthView,
  InstrumentLookup,
  OrderPlan,
  PolicyResult,
  Reason,
} from './policy-types.js';
export { applyTrade, QTY_EPSILON, type TradeOutcome } from './position-math.js';
export { type ReductionSizing, sizeReduction } from './reduce-sizing.js';
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
export { type MarketFill, runWaterfall, type WaterfallInput, type WaterfallResult } from './waterfall.js';
