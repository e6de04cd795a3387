/**
 * The simulated order book's shape and our own market impact. Depth within 1% of mid and the spread
 * follow volatility (depth ~ sigmaRef / sigma, clamped to [0.05, 2] of normal; spread ~ sigma / sigmaRef,
 * at least one tick), as liquidity providers pull back when prices move. Executions walk a book whose
 * depth is spread evenly over the 1% band and grows with distance beyond it (cumulative depth D * (x/1%)^2
 * past 1%, the square-root impact law for large orders): a market order pays the average distance of the
 * depth it takes, starting after C contracts that earlier executions consumed and that have not yet
 * refilled (half-life 30 seconds). So liquidation cascades and our own early reductions pay for the
 * liquidity they take.
 */

export const REFILL_HALF_LIFE_MIN = 0.5;
const REFILL = 0.5 ** (1 / REFILL_HALF_LIFE_MIN);
/** a single execution never moves more than this fraction from the touch */
const MAX_IMPACT = 0.1;

export interface BookShape {
  bid: number; // USD
  ask: number; // USD
  /** contracts resting within 1% of mid before this minute's consumption */
  bidDepth: number;
  askDepth: number;
}

export function roundToTick(price: number, tick: number): number {
  const v = Math.round(price / tick) * tick;
  // strip float dust (0.30000000000000004) so that prices print as the tick grid
  return Number(v.toPrecision(12));
}

export function volatilityRatio(sigma: number, sigmaRef: number): number {
  return sigmaRef > 0 && sigma > 0 ? sigma / sigmaRef : 1;
}

/**
 * Book at a mark. `depthUsd` is the normal depth within 1% (USD), `spreadBps` the normal spread.
 */
export function bookShape(
  mark: number,
  sigma: number,
  sigmaRef: number,
  depthUsd: number,
  spreadBps: number,
  tick: number,
): BookShape {
  const ratio = volatilityRatio(sigma, sigmaRef);
  const depthFactor = Math.min(2, Math.max(0.15, 1 / Math.sqrt(ratio)));
  const spread = Math.max(tick, (mark * spreadBps * Math.min(50, Math.max(1, ratio))) / 10_000);
  let bid = roundToTick(mark - spread / 2, tick);
  let ask = roundToTick(mark + spread / 2, tick);
  if (!(bid > 0)) bid = tick;
  if (ask < bid) ask = bid;
  const depth = (depthUsd * depthFactor) / mark;
  return { bid, ask, bidDepth: depth, askDepth: depth };
}

/** Depth consumed by recent executions on each side of one symbol's book; refills every minute. */
export class ConsumedDepth {
  bid = 0; // contracts
  ask = 0; // contracts

  refill(): void {
    this.bid *= REFILL;
    this.ask *= REFILL;
    if (this.bid < 1e-9) this.bid = 0;
    if (this.ask < 1e-9) this.ask = 0;
  }
}

/**
 * Average execution price of a market order of `qty` contracts (side = the taker's side: a sell hits the
 * bid) against `book`, given what was consumed before; records the consumption unless `commit` is false.
 */
/** Integral of the distance from the touch (fraction) over the first `q` contracts of a book with depth `d` within 1%. */
function impactArea(q: number, d: number): number {
  if (q <= d) return (0.01 * q * q) / (2 * d);
  return 0.005 * d + (((0.01 * 2) / 3) * (q ** 1.5 - d ** 1.5)) / Math.sqrt(d);
}

/** Average distance from the touch (fraction) paid by `qty` contracts after `used` were consumed. */
export function averageImpact(qty: number, used: number, depth: number): number {
  const d = Math.max(depth, 1e-12);
  if (!(qty > 0)) return 0;
  return Math.min(MAX_IMPACT, (impactArea(used + qty, d) - impactArea(used, d)) / qty);
}

export function executionPrice(
  side: 'buy' | 'sell',
  qty: number,
  book: BookShape,
  consumed: ConsumedDepth,
  tick: number,
  commit = true,
): number {
  if (side === 'sell') {
    const impact = averageImpact(qty, consumed.bid, book.bidDepth);
    if (commit) consumed.bid += qty;
    return Math.max(tick, roundToTick(book.bid * (1 - impact), tick));
  }
  const impact = averageImpact(qty, consumed.ask, book.askDepth);
  if (commit) consumed.ask += qty;
  return roundToTick(book.ask * (1 + impact), tick);
}
