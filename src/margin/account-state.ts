/**
 * One account's mutable state (cash with its breakdown, open positions) and the pure planning of the
 * changes an account event makes. Planning computes and checks every new number first; committing is
 * then infallible, so an event that throws leaves the state untouched.
 */
import { MarginRuleError } from './errors.js';
import { applyTrade } from './position-math.js';
import type { CashBreakdown, Position } from './types.js';

export interface AccountState {
  id: string;
  cash: number; // USD
  breakdown: CashBreakdown;
  /** insertion-ordered: evaluation order (and so float rounding) is deterministic */
  positions: Map<string, Position>;
}

export function emptyBreakdown(): CashBreakdown {
  return {
    deposits: 0,
    withdrawals: 0,
    realisedPnl: 0,
    fees: 0,
    liquidationFees: 0,
    fundingNet: 0,
    bankruptcyCredits: 0,
  };
}

export function newAccount(id: string): AccountState {
  return { id, cash: 0, breakdown: emptyBreakdown(), positions: new Map() };
}

export function cloneAccount(a: AccountState): AccountState {
  const positions = new Map<string, Position>();
  for (const [s, p] of a.positions) positions.set(s, { ...p });
  return { id: a.id, cash: a.cash, breakdown: { ...a.breakdown }, positions };
}

/** cash recomputed from its breakdown (for audits; equals `cash` up to float rounding). */
export function cashFromBreakdown(b: CashBreakdown): number {
  return b.deposits - b.withdrawals + b.realisedPnl - b.fees + b.fundingNet + b.bankruptcyCredits;
}

export function requireFinite(value: number, field: string): void {
  if (!Number.isFinite(value))
    throw new MarginRuleError('NON_FINITE', `${field} is not finite (${value})`, field);
}

/** A planned trade (fill / liquidation / adl) on one position. */
export interface TradePlan {
  symbol: string;
  qty: number; // contracts after the trade, signed
  avgEntry: number; // USD
  realised: number; // USD
  fee: number; // USD charged to the account
  liquidationFee: boolean;
  cash: number; // USD after the trade
}

export function planTrade(
  acct: AccountState,
  symbol: string,
  signedQty: number,
  price: number,
  contractSize: number,
  fee: number,
  liquidationFee: boolean,
): TradePlan {
  const pos = acct.positions.get(symbol);
  const out = applyTrade(pos?.qty ?? 0, pos?.avgEntry ?? 0, signedQty, price, contractSize);
  const cash = acct.cash + out.realised - fee;
  requireFinite(out.qty, 'qty');
  requireFinite(out.avgEntry, 'avgEntry');
  requireFinite(out.realised, 'realisedPnl');
  requireFinite(cash, 'cash');
  requireFinite(acct.breakdown.realisedPnl + out.realised, 'realisedPnl');
  requireFinite(acct.breakdown.fees + fee, 'fees');
  return { symbol, qty: out.qty, avgEntry: out.avgEntry, realised: out.realised, fee, liquidationFee, cash };
}

export function commitTrade(acct: AccountState, plan: TradePlan): void {
  acct.cash = plan.cash;
  acct.breakdown.realisedPnl += plan.realised;
  acct.breakdown.fees += plan.fee;
  if (plan.liquidationFee) acct.breakdown.liquidationFees += plan.fee;
  if (plan.qty === 0) acct.positions.delete(plan.symbol);
  else {
    const pos = acct.positions.get(plan.symbol);
    if (pos) {
      pos.qty = plan.qty;
      pos.avgEntry = plan.avgEntry;
    } else acct.positions.set(plan.symbol, { symbol: plan.symbol, qty: plan.qty, avgEntry: plan.avgEntry });
  }
}
