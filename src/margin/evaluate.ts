/**
 * Evaluating one account (object path): per-position tier, IM, MM, uPnL, liquidation and bankruptcy
 * prices, and the account's cross-margin totals. Pure: reads the state handed to it.
 */
import { marginRatioOf, notionalOf, upnlOf } from './arithmetic.js';
import { effectiveImr } from './dynamic-margin.js';
import { MarginRuleError } from './errors.js';
import { bankruptcyPrice, liquidationPrice } from './liquidation-price.js';
import { tierIndexOf } from './tiers.js';
import type { AccountMargin, CashBreakdown, InstrumentSpec, Position, PositionMargin } from './types.js';

/** What an evaluation needs to know about the market. */
export interface MarketView {
  instrument(symbol: string): InstrumentSpec | undefined;
  /** USD: the price margin uses (latest mark, else last traded price) */
  markOf(symbol: string): number | undefined;
  /** the dynamic-margin term for a symbol (NaN = add-on off); see dynamic-margin.ts */
  dynamicTermOf(symbol: string): number;
}

export interface AccountInput {
  id: string;
  cash: number; // USD
  breakdown: CashBreakdown;
  positions: Iterable<Position>;
}

export interface EvaluateOptions {
  /** compute liquidation / bankruptcy prices (default true) */
  prices?: boolean;
}

export function evaluateAccount(
  acct: AccountInput,
  market: MarketView,
  opts: EvaluateOptions = {},
): AccountMargin {
  const positions: PositionMargin[] = [];
  let upnl = 0;
  let mm = 0;
  let im = 0;
  let notional = 0;
  for (const pos of acct.positions) {
    const spec = market.instrument(pos.symbol);
    if (!spec) throw new MarginRuleError('UNDECLARED_INSTRUMENT', `no instrument "${pos.symbol}"`, 'symbol');
    const mark = market.markOf(pos.symbol);
    if (mark === undefined)
      throw new MarginRuleError('NO_MARK', `no mark or trade price for "${pos.symbol}"`);
    const c = spec.contractSize;
    const n = notionalOf(pos.qty, c, mark);
    const tierIndex = tierIndexOf(spec.tiers, n);
    const tier = spec.tiers[tierIndex]!;
    const imr = effectiveImr(tier.imr, tier.mmr, market.dynamicTermOf(pos.symbol));
    const pu = upnlOf(pos.qty, pos.avgEntry, c, mark);
    const pmm = n * tier.mmr;
    const pim = n * imr;
    upnl += pu;
    mm += pmm;
    im += pim;
    notional += n;
    positions.push({
      symbol: pos.symbol,
      qty: pos.qty,
      avgEntry: pos.avgEntry,
      mark,
      notional: n,
      tierIndex,
      imr,
      mmr: tier.mmr,
      mm: pmm,
      im: pim,
      upnl: pu,
      liquidationPrice: null,
      bankruptcyPrice: null,
    });
  }
  const equity = acct.cash + upnl;
  if (opts.prices !== false) {
    for (const p of positions) {
      const spec = market.instrument(p.symbol)!;
      const inputs = {
        qty: p.qty,
        mark: p.mark,
        contractSize: spec.contractSize,
        tiers: spec.tiers,
        equity,
        otherMm: mm - p.mm,
      };
      p.liquidationPrice = liquidationPrice(inputs);
      p.bankruptcyPrice = bankruptcyPrice(inputs);
    }
  }
  return {
    account: acct.id,
    cash: acct.cash,
    cashBreakdown: copyBreakdown(acct.breakdown),
    equity,
    mm,
    im,
    marginRatio: marginRatioOf(equity, mm),
    freeCollateral: equity - im,
    upnl,
    notional,
    positions,
  };
}

/** Field by field: an object spread is V8's slow generic copy, and this runs for every evaluation. */
function copyBreakdown(b: CashBreakdown): CashBreakdown {
  return {
    deposits: b.deposits,
    withdrawals: b.withdrawals,
    realisedPnl: b.realisedPnl,
    fees: b.fees,
    liquidationFees: b.liquidationFees,
    fundingNet: b.fundingNet,
    bankruptcyCredits: b.bankruptcyCredits,
  };
}
