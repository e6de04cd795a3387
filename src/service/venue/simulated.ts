/**
 * The simulated venue: fills each reduce-only order against the simulator's book model
 * (src/sim/market/microstructure.ts): the order hits the touch (bid for a sell) and pays the average
 * distance of the depth it walks — depth spread evenly over the 1% band, growing beyond it (square-root
 * impact) — after what this venue's own recent executions consumed, which refills with the simulator's
 * 30-second half-life in event time. The consumed depth is per venue instance (per worker process).
 * Reduce-only restrictions are recorded per account (newest version wins); the service has no order path
 * of its own besides reductions, so `admits` is the check a venue's order entry would make.
 */
import { averageImpact, REFILL_HALF_LIFE_MIN } from '../../sim/market/microstructure.js';
import type { MarketInput } from '../queue/job.js';
import {
  type ExecutionRequest,
  type ExecutionResult,
  type ExecutionVenue,
  type RestrictionRequest,
  type RestrictionResult,
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
  /**
   * executions remembered by idempotency key, newest kept (default 100,000): a key older than that
   * executes anew. Retries come within minutes, so this only bounds a long-running process's memory.
   */
  maxRemembered?: number;
  /** restriction messages kept in `restrictionLog`, newest kept (default 10,000) */
  maxRestrictionLog?: number;
}

/** contracts already taken from each side of a symbol's book, as of `ts` (ms) */
interface Consumed {
  bid: number;
  ask: number;
  ts: number;
}

/** USD: average fill price of `qty` contracts on `side`, after `used` contracts of that side were consumed. */
export function simulatedFillPrice(
  m: MarketInput,
  side: 'buy' | 'sell',
  qty: number,
  o: Pick<Required<SimulatedVenueOptions>, 'fallbackHalfSpreadBps' | 'fallbackImpactBps'>,
  used = 0,
): number {
  const half = (m.mark * o.fallbackHalfSpreadBps) / 1e4;
  const touch = side === 'sell' ? (m.bid ?? m.mark - half) : (m.ask ?? m.mark + half);
  const depth = side === 'sell' ? m.bidDepth : m.askDepth;
  const impact =
    depth !== undefined && depth > 0 ? averageImpact(qty, used, depth) : o.fallbackImpactBps / 1e4;
  return side === 'sell' ? touch * (1 - impact) : touch * (1 + impact);
}

export class SimulatedVenue implements ExecutionVenue {
  readonly name = 'simulated';
  private readonly opts: Required<SimulatedVenueOptions>;
  /** executions by idempotency key, in insertion order: a repeated key returns the first result */
  private readonly done = new Map<string, ExecutionResult>();
  private readonly consumed = new Map<string, Consumed>();
  /** restriction per account: the newest version applied */
  readonly restrictions = new Map<string, { reduceOnly: boolean; version: number; decidedAt: number }>();
  /** the latest restriction messages received (at most `maxRestrictionLog`), in order, applied or not */
  readonly restrictionLog: (RestrictionRequest & { applied: boolean })[] = [];

  constructor(opts: SimulatedVenueOptions = {}) {
    this.opts = {
      takerFeeRate: 0.0005,
      fallbackHalfSpreadBps: 2.5,
      fallbackImpactBps: 10,
      maxRemembered: 100_000,
      maxRestrictionLog: 10_000,
      ...opts,
    };
  }

  private consumedAt(symbol: string, ts: number): Consumed {
    const c = this.consumed.get(symbol) ?? { bid: 0, ask: 0, ts };
    const minutes = Math.max(0, ts - c.ts) / 60_000;
    const keep = 0.5 ** (minutes / REFILL_HALF_LIFE_MIN);
    const now = { bid: c.bid * keep, ask: c.ask * keep, ts: Math.max(ts, c.ts) };
    this.consumed.set(symbol, now);
    return now;
  }

  async setReduceOnly(req: RestrictionRequest): Promise<RestrictionResult> {
    const seen = this.restrictions.get(req.account);
    const applied = !seen || req.version > seen.version;
    if (applied)
      this.restrictions.set(req.account, {
        reduceOnly: req.reduceOnly,
        version: req.version,
        decidedAt: req.decidedAt,
      });
    this.restrictionLog.push({ ...req, applied });
    const over = this.restrictionLog.length - this.opts.maxRestrictionLog;
    if (over > 0) this.restrictionLog.splice(0, over);
    return { venue: this.name, applied, reference: `sim-${req.idempotencyKey}` };
  }

  isReduceOnly(account: string): boolean {
    return this.restrictions.get(account)?.reduceOnly ?? false;
  }

  /**
   * Whether an order of `account` (holding `positionQty` contracts, signed) is admitted: a restricted
   * account may only reduce its position (never flip past zero nor grow it).
   */
  admits(account: string, positionQty: number, side: 'buy' | 'sell', qty: number): boolean {
    if (!this.isReduceOnly(account)) return true;
    return Math.abs(positionQty + (side === 'buy' ? qty : -qty)) <= Math.abs(positionQty);
  }

  async execute(req: ExecutionRequest): Promise<ExecutionResult> {
    const seen = this.done.get(req.idempotencyKey);
    if (seen) return seen;
    for (const o of req.orders)
      if (!req.market[o.symbol]) throw new VenueRejectedError(`no market inputs for ${o.symbol}`);
    const fills: VenueFill[] = req.orders.map((o) => {
      const m = req.market[o.symbol] as MarketInput;
      const c = this.consumedAt(o.symbol, req.decidedAt);
      const price = simulatedFillPrice(m, o.side, o.qty, this.opts, o.side === 'sell' ? c.bid : c.ask);
      if (o.side === 'sell') c.bid += o.qty;
      else c.ask += o.qty;
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
    // forget the oldest keys beyond the bound (a Map iterates in insertion order)
    for (const key of this.done.keys()) {
      if (this.done.size <= this.opts.maxRemembered) break;
      this.done.delete(key);
    }
    return result;
  }
}
