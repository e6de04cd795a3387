/**
 * How a trade (fill, liquidation or adl) changes one position, per the spec's account arithmetic:
 * adding moves the entry to the volume-weighted mean, reducing realises
 * `(price - avgEntry) * closedQty * contractSize` (negated for a short), crossing zero closes the old
 * position and opens the rest at the trade price.
 */

/** Relative tolerance (of the position size) under which a close counts as exact, so float dust from
 * decimal quantities (0.1 + 0.2 - 0.3) does not leave a phantom position. */
export const QTY_EPSILON = 1e-12;

export interface TradeOutcome {
  /** contracts, signed */
  qty: number;
  /** USD; 0 when flat */
  avgEntry: number;
  /** USD realised by the closed part */
  realised: number;
}

/**
 * @param qty contracts, signed, before the trade
 * @param avgEntry USD
 * @param tradeQty contracts, signed (buy > 0)
 * @param price USD
 * @param contractSize base units per contract
 */
export function applyTrade(
  qty: number,
  avgEntry: number,
  tradeQty: number,
  price: number,
  contractSize: number,
): TradeOutcome {
  if (qty === 0) return { qty: tradeQty, avgEntry: price, realised: 0 };
  const absQty = Math.abs(qty);
  const absTrade = Math.abs(tradeQty);
  if (qty > 0 === tradeQty > 0) {
    const next = qty + tradeQty;
    return { qty: next, avgEntry: (absQty * avgEntry + absTrade * price) / Math.abs(next), realised: 0 };
  }
  const dir = qty > 0 ? 1 : -1;
  const diff = absTrade - absQty;
  if (Math.abs(diff) <= QTY_EPSILON * absQty) {
    return { qty: 0, avgEntry: 0, realised: (price - avgEntry) * absQty * contractSize * dir };
  }
  if (diff < 0) {
    return { qty: qty + tradeQty, avgEntry, realised: (price - avgEntry) * absTrade * contractSize * dir };
  }
  return {
    qty: -dir * diff,
    avgEntry: price,
    realised: (price - avgEntry) * absQty * contractSize * dir,
  };
}
