/**
 * What-if arithmetic for sizing orders: the maintenance margin and equity of an account whose positions
 * are resized (closed at the mark) and whose marks are optionally shocked. Uses the same tier rule and
 * arithmetic as the evaluator.
 */
import type { Tier } from '../events/schema.js';
import { notionalOf } from './arithmetic.js';
import { MarginRuleError } from './errors.js';
import type { InstrumentLookup } from './policy-types.js';
import { tierIndexOf } from './tiers.js';
import type { AccountMargin } from './types.js';

export interface Holding {
  symbol: string;
  qty: number; // contracts, signed, as held now
  mark: number; // USD
  contractSize: number;
  tiers: readonly Tier[];
  liquidationFeeRate: number;
}

export function holdingsOf(margin: AccountMargin, instruments: InstrumentLookup): Holding[] {
  return margin.positions.map((p) => {
    const spec = instruments.instrument(p.symbol);
    if (!spec) throw new MarginRuleError('UNDECLARED_INSTRUMENT', `no instrument "${p.symbol}"`, 'symbol');
    return {
      symbol: p.symbol,
      qty: p.qty,
      mark: p.mark,
      contractSize: spec.contractSize,
      tiers: spec.tiers,
      liquidationFeeRate: spec.liquidationFeeRate,
    };
  });
}

/** USD: MM of the holdings with quantities `qtys` (signed) at marks `marks` (default: current marks). */
export function mmAt(
  holdings: readonly Holding[],
  qtys: readonly number[],
  marks?: readonly number[],
): number {
  let mm = 0;
  for (let i = 0; i < holdings.length; i++) {
    const h = holdings[i]!;
    const n = notionalOf(qtys[i]!, h.contractSize, marks ? marks[i]! : h.mark);
    mm += n * h.tiers[tierIndexOf(h.tiers, n)]!.mmr;
  }
  return mm;
}

/** USD: notional closed going from the held quantities to `qtys`, valued at the current marks. */
export function closedNotional(holdings: readonly Holding[], qtys: readonly number[]): number {
  let n = 0;
  for (let i = 0; i < holdings.length; i++) {
    const h = holdings[i]!;
    n += notionalOf(h.qty - qtys[i]!, h.contractSize, h.mark);
  }
  return n;
}

/** Reduce-only orders taking the holdings to `qtys`. */
export function ordersTo(
  holdings: readonly Holding[],
  qtys: readonly number[],
): Array<{ symbol: string; side: 'buy' | 'sell'; qty: number; notional: number }> {
  const orders = [];
  for (let i = 0; i < holdings.length; i++) {
    const h = holdings[i]!;
    const delta = qtys[i]! - h.qty;
    if (delta === 0) continue;
    orders.push({
      symbol: h.symbol,
      side: delta > 0 ? ('buy' as const) : ('sell' as const),
      qty: Math.abs(delta),
      notional: notionalOf(delta, h.contractSize, h.mark),
    });
  }
  return orders;
}
