/**
 * The simulated venue: fills each reduce-only order against a linear book built from the decision's
 * market inputs — half the spread, plus impact growing with size against the visible depth (depth is
 * the contracts resting within 1% of mid, spread evenly, so eating q contracts moves the price by
 * 1% * q / depth and the average fill is half that). It is the same slippage model as the features'
 * `liq_slippage_bps`. The simulator (src/sim) has no book model yet; when it has, this should use it.
 */
import type { MarketInput } from '../queue/job.js';
import {
  type ExecutionRequest,
  type ExecutionResult,
  type ExecutionVenue,
  type VenueFill,
  VenueRejectedError,
} from './types.js';

export interface SimulatedVenueOptions {
  /** taker fee rate for early reductions, fraction of notional (default 0.0005) */
  takerFeeRate?: number;
  /** half spread when the decision saw no book, bps (default 2.5) */
  fallbackHalfSpreadBps?: number;
  /** impact when the decision saw no depth, bps (default 10) */
  fallbackImpactBps?: number;
}

/** USD per unit of base: average fill price of `qty` contracts on `side` into the linear book. */
export function simulatedFillPrice(
  m: MarketInput,
  side: 'buy' | 'sell',
  qty: number,
  o: Required<SimulatedVenueOptions>,
): number {
  const hasBook = m.bid !== undefined && m.ask !== undefined;
  const mid = hasBook ? ((m.bid as number) + (m.ask as number)) / 2 : m.mark;
  const half = hasBook ? ((m.ask as number) - (m.bid as number)) / 2 : (mid * o.fallbackHalfSpreadBps) / 1e4;
  const depth = side === 'sell' ? m.bidDepth : m.askDepth;
  const impact =
    depth !== undefined && depth > 0 ? (0.01 * mid * qty) / depth / 2 : (mid * o.fallbackImpactBps) / 1e4;
  const price = side === 'sell' ? mid - half - impact : mid + half + impact;
  return Math.max(price, mid * 0.01);
}

export class SimulatedVenue implements ExecutionVenue {
  readonly name = 'simulated';
  private readonly opts: Required<SimulatedVenueOptions>;
  /** executions by idempotency key: a repeated key returns the first result */
  private readonly done = new Map<string, ExecutionResult>();

  constructor(opts: SimulatedVenueOptions = {}) {
    this.opts = { takerFeeRate: 0.0005, fallbackHalfSpreadBps: 2.5, fallbackImpactBps: 10, ...opts };
  }

  async execute(req: ExecutionRequest): Promise<ExecutionResult> {
    const seen = this.done.get(req.idempotencyKey);
    if (seen) return seen;
    const fills: VenueFill[] = req.orders.map((o) => {
      const m = req.market[o.symbol];
      if (!m) throw new VenueRejectedError(`no market inputs for ${o.symbol}`);
      const price = simulatedFillPrice(m, o.side, o.qty, this.opts);
      const notional = o.qty * m.contractSize * price; // USD
      const feeRate = req.kind === 'liquidate' ? m.liquidationFeeRate : this.opts.takerFeeRate;
      return {
        symbol: o.symbol,
        side: o.side,
        qty: o.qty,
        price,
        fee: notional * feeRate,
        ts: req.decidedAt,
      };
    });
    const result: ExecutionResult = { venue: this.name, fills, reference: `sim-${req.idempotencyKey}` };
    this.done.set(req.idempotencyKey, result);
    return result;
  }
}
