/**
 * The simulated venue's state and its market-side duties: every event goes through `emit` (applied to the
 * MarginBook, the single source of margin truth, then written), the minute's market block (marks, book
 * tops that thin with volatility, funding settlements, background public trades), resting orders, the
 * bookkeeping of which accounts the liquidation pass must look at, and the public prints of the venue's
 * own flow. Execution of orders lives in execution.ts, the liquidation pass in liquidation-pass.ts.
 */
import type { CanonicalEvent } from '../../events/schema.js';
import type { MarginBook } from '../../margin/index.js';
import { type MarketPaths, SUBSTEPS } from '../market/market-paths.js';
import { type BookShape, bookShape, ConsumedDepth, roundToTick } from '../market/microstructure.js';
import { Rng } from '../random.js';
import type { RestingOrder, Trader } from '../traders/types.js';
import { VenueStats } from './stats.js';
import type { EventSink, FeeSchedule, LeverageCap, MarketSnapshot } from './types.js';

/** ms offsets of the phases within a simulated minute (events are written in time order) */
export const PHASE = {
  market: 0,
  liquidation: 100,
  riskEngine: 200,
  restingFills: 300,
  traders: 1000,
  prints: 59_500,
};
export const TRADER_WINDOW_MS = 58_000;
/** ms between marks in a fast minute */
export const SUB_STEP_MS = 60_000 / SUBSTEPS;

interface Flow {
  buyQty: number; // contracts bought by takers
  buyNotional: number; // USD
  sellQty: number;
  sellNotional: number;
}

export interface RestingEntry extends RestingOrder {
  trader: number;
}

export class Venue {
  readonly stats: VenueStats;
  readonly consumed: ConsumedDepth[];
  readonly shapes: BookShape[];
  readonly flows: Flow[];
  readonly resting: Map<string, RestingEntry>[];
  readonly idToIndex = new Map<string, number>();
  /** accounts touched since the last liquidation pass */
  readonly dirty = new Set<number>();
  /** mark step (minute * SUBSTEPS + j) -> accounts whose mark band may be exhausted then */
  readonly due = new Map<number, number[]>();
  /** the mark step each account is next due at, -1 for none */
  readonly checkAt: Int32Array;
  /** USD: the latest mark per instrument (minute mark, or the sub-minute mark in a fast minute) */
  readonly currentMark: Float64Array;
  readonly depthUsd: number[];
  private readonly tape: Rng[];
  minute = 0;
  preemptSeq = 0;
  /** trader indices the risk engine restricted to reduce-only until its next look */
  readonly reduceOnly = new Set<number>();
  private readonly everRestricted = new Set<number>();
  /** trader index -> the leverage cap (x, notional / equity) the risk engine set until its next look */
  readonly leverageCaps = new Map<number, number>();
  private readonly everCapped = new Set<number>();

  constructor(
    readonly market: MarketPaths,
    readonly book: MarginBook,
    readonly traders: readonly Trader[],
    private readonly sink: EventSink,
    readonly fees: FeeSchedule,
    seed: number,
  ) {
    const n = market.symbols.length;
    this.stats = new VenueStats((s) => book.instrument(s)?.contractSize ?? 1);
    this.consumed = Array.from({ length: n }, () => new ConsumedDepth());
    this.shapes = market.symbols.map(() => ({ bid: 0, ask: 0, bidDepth: 0, askDepth: 0 }));
    this.flows = market.symbols.map(() => ({ buyQty: 0, buyNotional: 0, sellQty: 0, sellNotional: 0 }));
    this.resting = market.symbols.map(() => new Map());
    this.depthUsd = market.symbols.map((s) => s.config.depthUsdPerAccount * traders.length);
    this.tape = market.symbols.map((s) => Rng.stream(seed, `market/tape/${s.config.symbol}`));
    this.checkAt = new Int32Array(traders.length).fill(-1);
    this.currentMark = new Float64Array(n);
    for (const t of traders) this.idToIndex.set(t.id, t.index);
  }

  ts(minute: number, offsetMs: number): number {
    return this.market.startMs + minute * 60_000 + offsetMs;
  }

  emit(ev: CanonicalEvent): void {
    this.book.apply(ev);
    this.sink.write(ev);
    this.stats.count(ev);
  }

  declareInstruments(): void {
    const ts = this.market.startMs;
    for (const s of this.market.symbols) {
      const c = s.config;
      this.emit({
        type: 'instrument',
        ts,
        symbol: c.symbol,
        base: c.base,
        contractSize: c.contractSize,
        tiers: c.tiers,
        liquidationFeeRate: c.liquidationFeeRate,
      });
    }
  }

  /** Marks, book tops, funding and the background tape of minute `m`. */
  marketBlock(m: number): void {
    this.minute = m;
    const ts = this.ts(m, PHASE.market);
    for (const s of this.market.symbols) {
      this.currentMark[s.index] = s.marks[m]!;
      this.emit({ type: 'mark', ts, symbol: s.config.symbol, price: s.marks[m]! });
    }
    for (const s of this.market.symbols) {
      const c = s.config;
      const shape = this.reshape(s.index);
      const used = this.consumed[s.index]!;
      this.emit({
        type: 'book',
        ts,
        symbol: c.symbol,
        bid: shape.bid,
        ask: shape.ask,
        bidDepth: round3(Math.max(0, shape.bidDepth - used.bid)),
        askDepth: round3(Math.max(0, shape.askDepth - used.ask)),
      });
    }
    const rates = this.market.fundingAt(m);
    if (rates) {
      for (const s of this.market.symbols) {
        this.emit({ type: 'funding', ts, symbol: s.config.symbol, rate: rates[s.index]! });
        for (const id of this.book.accountsHolding(s.config.symbol)) this.dirty.add(this.idToIndex.get(id)!);
      }
    }
    for (const s of this.market.symbols) this.backgroundTrades(m, s.index, ts);
  }

  /** The book around the current mark (internal: book events are published once a minute). */
  private reshape(i: number): BookShape {
    const s = this.market.symbols[i]!;
    const c = s.config;
    const shape = bookShape(
      this.currentMark[i]!,
      s.sigma[this.minute]!,
      s.sigmaRef,
      this.depthUsd[i]!,
      c.spreadBps,
      c.tickSize,
    );
    this.shapes[i] = shape;
    return shape;
  }

  /** In a fast minute, the mark of sub-step j (1..SUBSTEPS-1), at minute + j * 10 s. */
  subMark(m: number, j: number): boolean {
    if (!this.market.fast[m]) return false;
    const ts = this.ts(m, j * SUB_STEP_MS);
    for (const s of this.market.symbols) {
      const price = s.fine[m * SUBSTEPS + j]!;
      this.currentMark[s.index] = price;
      this.emit({ type: 'mark', ts, symbol: s.config.symbol, price });
      this.reshape(s.index);
    }
    return true;
  }

  private backgroundTrades(m: number, i: number, ts: number): void {
    const s = this.market.symbols[i]!;
    const r = this.tape[i]!;
    const shape = this.shapes[i]!;
    const n = 1 + Math.min(5, r.poisson(1.5));
    const prev = s.marks[Math.max(0, m - 1)]!;
    const z = Math.log(s.marks[m]! / prev) / Math.max(1e-12, s.sigma[m]!);
    const pBuy = 0.5 + 0.35 * Math.tanh(z / 2);
    const total = s.volume[m]!;
    for (let k = 0; k < n; k++) {
      const qty = Number(((total / n) * r.uniform(0.3, 1.7)).toPrecision(6));
      const buy = r.bernoulli(pBuy);
      if (!(qty > 0)) continue;
      this.emit({
        type: 'trade',
        ts,
        symbol: s.config.symbol,
        price: buy ? shape.ask : shape.bid,
        qty,
        aggressor: buy ? 'buy' : 'sell',
      });
    }
  }

  /** Record a taker execution for the end-of-minute prints. */
  recordFlow(symbol: number, side: 'buy' | 'sell', qty: number, price: number): void {
    const f = this.flows[symbol]!;
    if (side === 'buy') {
      f.buyQty += qty;
      f.buyNotional += qty * price;
    } else {
      f.sellQty += qty;
      f.sellNotional += qty * price;
    }
  }

  /** The venue's own taker flow of the minute as public prints; depth refills. */
  endMinute(m: number): void {
    const ts = this.ts(m, PHASE.prints);
    for (const s of this.market.symbols) {
      const f = this.flows[s.index]!;
      const tick = s.config.tickSize;
      if (f.buyQty > 0)
        this.emit({
          type: 'trade',
          ts,
          symbol: s.config.symbol,
          price: roundToTick(f.buyNotional / f.buyQty, tick),
          qty: round6(f.buyQty),
          aggressor: 'buy',
        });
      if (f.sellQty > 0)
        this.emit({
          type: 'trade',
          ts,
          symbol: s.config.symbol,
          price: roundToTick(f.sellNotional / f.sellQty, tick),
          qty: round6(f.sellQty),
          aggressor: 'sell',
        });
      f.buyQty = f.buyNotional = f.sellQty = f.sellNotional = 0;
      this.consumed[s.index]!.refill();
    }
    this.stats.endMinute();
  }

  /** Schedule a liquidation check of account `i` at mark step `m` (or never, past the end). */
  scheduleCheck(i: number, m: number): void {
    if (m >= this.market.minutes * SUBSTEPS) {
      this.checkAt[i] = -1;
      return;
    }
    this.checkAt[i] = m;
    let list = this.due.get(m);
    if (!list) {
      list = [];
      this.due.set(m, list);
    }
    list.push(i);
  }

  /** The risk engine's restricted set replaces the previous one; returns the newly restricted indices. */
  restrict(ids: readonly string[]): number[] {
    const next = new Set<number>();
    for (const id of ids) {
      const i = this.idToIndex.get(id);
      if (i !== undefined) next.add(i);
    }
    const added = [...next].filter((i) => !this.reduceOnly.has(i)).sort((a, b) => a - b);
    this.reduceOnly.clear();
    for (const i of next) {
      this.reduceOnly.add(i);
      if (!this.everRestricted.has(i)) {
        this.everRestricted.add(i);
        this.stats.reduceOnly.restrictedAccounts++;
      }
    }
    return added;
  }

  /** The risk engine's leverage caps replace the previous ones. */
  capLeverage(caps: readonly LeverageCap[]): void {
    this.leverageCaps.clear();
    for (const c of caps) {
      const i = this.idToIndex.get(c.account);
      // 0 is a cap too (nothing may be opened); a negative or non-finite one is no cap
      if (i === undefined || !(c.maxLeverage >= 0 && Number.isFinite(c.maxLeverage))) continue;
      this.leverageCaps.set(i, Math.min(c.maxLeverage, this.leverageCaps.get(i) ?? Number.POSITIVE_INFINITY));
      if (!this.everCapped.has(i)) {
        this.everCapped.add(i);
        this.stats.leverageCap.cappedAccounts++;
      }
    }
  }

  marketSnapshot(): MarketSnapshot[] {
    const m = this.minute;
    return this.market.symbols.map((s) => {
      const shape = this.shapes[s.index]!;
      const used = this.consumed[s.index]!;
      return {
        symbol: s.config.symbol,
        mark: this.currentMark[s.index]!,
        bid: shape.bid,
        ask: shape.ask,
        bidDepth: Math.max(0, shape.bidDepth - used.bid),
        askDepth: Math.max(0, shape.askDepth - used.ask),
        sigma1h: s.sigma[m]! * Math.sqrt(60),
      };
    });
  }
}

export function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}

export function round6(x: number): number {
  return Number(x.toPrecision(10));
}
