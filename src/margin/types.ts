/**
 * Public data shapes of the margin core. Money is USD (the venue's quote currency), quantities are
 * contracts (signed: long > 0), prices are USD per unit of base, times are epoch ms.
 */
import type { Tier } from '../events/schema.js';

export type { Tier };

/** A perpetual contract's parameters, from its latest `instrument` event. */
export interface InstrumentSpec {
  symbol: string;
  base: string;
  /** units of base per contract */
  contractSize: number;
  /** sorted by maxNotional ascending; maxNotional null = unbounded */
  tiers: readonly Tier[];
  /** fraction of closed notional paid to the insurance fund on a liquidation */
  liquidationFeeRate: number;
  /** ms: the ts of the instrument event these parameters apply from */
  since: number;
}

/** An open position. */
export interface Position {
  symbol: string;
  /** contracts, signed (long > 0) */
  qty: number;
  /** USD per unit of base: volume-weighted entry of the open position */
  avgEntry: number;
}

/**
 * Where an account's cash came from. `cash` equals
 * `deposits - withdrawals + realisedPnl - fees + fundingNet + bankruptcyCredits` (up to float rounding).
 */
export interface CashBreakdown {
  deposits: number; // USD
  withdrawals: number; // USD
  realisedPnl: number; // USD
  /** USD: trading fees (negative = net rebates) plus liquidation fees */
  fees: number;
  /** USD: the part of `fees` that were liquidation penalties */
  liquidationFees: number;
  /** USD: funding received minus funding paid */
  fundingNet: number;
  /** USD: what bankruptcies added to reset cash to 0 */
  bankruptcyCredits: number;
}

/** One position's margin figures at the latest mark. */
export interface PositionMargin {
  symbol: string;
  /** contracts, signed (long > 0) */
  qty: number;
  avgEntry: number; // USD
  /** USD: the latest mark (or the last traded price when no mark was seen yet) */
  mark: number;
  /** USD: |qty| * contractSize * mark */
  notional: number;
  /** index into the instrument's tiers */
  tierIndex: number;
  /** initial margin rate applied (the tier's, raised by the dynamic add-on when enabled) */
  imr: number;
  /** maintenance margin rate of the tier */
  mmr: number;
  mm: number; // USD
  im: number; // USD
  upnl: number; // USD
  /** USD: the mark at which the account's equity = MM, other marks held; null if no such price */
  liquidationPrice: number | null;
  /** USD: the mark at which the account's equity = 0, other marks held; null if no such price > 0 */
  bankruptcyPrice: number | null;
}

/** An account's margin state at the latest marks (cross margin). */
export interface AccountMargin {
  account: string;
  cash: number; // USD
  cashBreakdown: CashBreakdown;
  equity: number; // USD: cash + upnl
  mm: number; // USD
  im: number; // USD
  /** equity / MM; +Infinity with no position */
  marginRatio: number;
  /** USD: equity - IM (negative = initial-margin shortfall) */
  freeCollateral: number;
  upnl: number; // USD
  /** USD: sum of position notionals */
  notional: number;
  positions: PositionMargin[];
}

/** Venue-level balances the account events move (replayable from the events alone). */
export interface VenueFunds {
  /** USD: insurance fund balance (initial balance + liquidation fees - deficits covered) */
  insuranceFund: number;
  /** USD: trading fees collected from fills (negative fees = rebates paid) */
  feesCollected: number;
  /** USD: liquidation fees paid into the insurance fund */
  liquidationFeesCollected: number;
  /** USD: bankruptcy deficits the insurance fund covered */
  insuranceCovered: number;
  /** USD (>= 0): bankruptcy deficits nobody covered (written off) */
  socialisedLoss: number;
}
