/**
 * Candles of one instrument at one step (1 m, 5 m, 1 h), built from marks (OHLC) and public trades (volume),
 * each closed candle fed to its CandleIndicators.
 *
 * Gaps are explicit, never interpolated:
 * - a step with no mark produces no candle (a step with trades but no mark closes with its volume dropped
 *   from the candle series; the decayed volume windows still count it);
 * - the log return from the previous candle across `k` steps (k - 1 missing) is divided by sqrt(k), the
 *   per-step return of a random walk, before it enters the volatility window; `gapSteps` counts the
 *   missing steps;
 * - ATR, RSI and Bollinger see the candles that exist, back to back.
 * A candle closes when an event of a later step arrives or when `advanceTo` passes its end.
 */
import { CandleIndicators, INPUT_WIDTH, type IndicatorPeriods } from './indicators.js';
import type { Pacer } from './pace.js';

export interface Candle {
  /** step index: the candle covers [bucket * stepMs, (bucket + 1) * stepMs) */
  bucket: number;
  open: number; // USD
  high: number; // USD
  low: number; // USD
  close: number; // USD
  volume: number; // contracts traded in public trades during the step
}

/** Everything a CandleSeries holds (see `CandleSeries.state`). */
export interface CandleSeriesState {
  closedCount: number;
  gapSteps: number;
  bucket: number;
  hasMark: boolean;
  open: number;
  high: number;
  low: number;
  close: number;
  volume: number;
  lastBucket: number;
  lastClose: number;
  last: Candle | undefined;
  ringBucket: Float64Array;
  ringClose: Float64Array;
  ringHead: number;
  ringSize: number;
  /** the candles its indicators keep (CandleIndicators.fedInputs): at most 2 * REBASE_CANDLES */
  indicatorInputs: Float64Array;
  /**
   * which candle of the series is the first of `indicatorInputs` (CandleIndicators.inputsFrom); absent in
   * snapshots of format version 2 and before, which kept every candle: 0
   */
  indicatorInputsFrom?: number;
}

export class CandleSeries {
  indicators: CandleIndicators;
  /** steps with no mark between closed candles, total */
  gapSteps = 0;

  // the open candle
  private bucket = -1; // step index floor(ts / stepMs); -1 before any event
  private hasMark = false;
  private open = 0; // USD
  private high = 0; // USD
  private low = 0; // USD
  private close = 0; // USD
  private volume = 0; // contracts
  // the last closed candle
  private lastBucket = -1;
  private lastClose = 0; // USD
  /** the last closed candle (undefined before the first) */
  last: Candle | undefined;
  // recent closes (newest at ringHead - 1), for returns over a lookback
  private readonly ringBucket: Float64Array;
  private readonly ringClose: Float64Array;
  private ringHead = 0;
  private ringSize = 0;

  constructor(
    readonly stepMs: number,
    private readonly periods: IndicatorPeriods,
    /** how many recent closes to keep for `closeAtOrBefore` (0 = none) */
    ringCapacity = 0,
    /** may `state()` be read (for snapshots)? The indicators keep their bounded window either way */
    record = false,
  ) {
    this.indicators = new CandleIndicators(periods, record);
    this.ringBucket = new Float64Array(ringCapacity);
    this.ringClose = new Float64Array(ringCapacity);
  }

  onMark(ts: number, price: number): void {
    const b = Math.floor(ts / this.stepMs);
    if (b !== this.bucket) this.roll(b);
    if (!this.hasMark) {
      this.hasMark = true;
      this.open = price;
      this.high = price;
      this.low = price;
    } else {
      if (price > this.high) this.high = price;
      if (price < this.low) this.low = price;
    }
    this.close = price;
  }

  /** qty in contracts */
  onTrade(ts: number, qty: number): void {
    const b = Math.floor(ts / this.stepMs);
    if (b !== this.bucket) this.roll(b);
    this.volume += qty;
  }

  /** Close the open candle if `ts` is at or past its end. */
  advanceTo(ts: number): void {
    if (this.bucket >= 0 && this.hasMark && ts >= (this.bucket + 1) * this.stepMs) this.emit();
  }

  /** closed candles seen: each is fed to the indicators once, so their count is kept there only */
  get closedCount(): number {
    return this.indicators.candlesFed;
  }

  /** Volume (contracts) of the open candle, for inspection. */
  get openVolume(): number {
    return this.volume;
  }

  /** Close of the newest kept candle whose step index is <= `bucket`; NaN if none is kept. */
  closeAtOrBefore(bucket: number): number {
    const cap = this.ringBucket.length;
    for (let k = 1; k <= this.ringSize; k++) {
      const i = (this.ringHead - k + cap) % cap;
      if (this.ringBucket[i]! <= bucket) return this.ringClose[i]!;
    }
    return Number.NaN;
  }

  /** A copy of the whole state (for shard snapshots). */
  state(): CandleSeriesState {
    return {
      closedCount: this.closedCount,
      gapSteps: this.gapSteps,
      bucket: this.bucket,
      hasMark: this.hasMark,
      open: this.open,
      high: this.high,
      low: this.low,
      close: this.close,
      volume: this.volume,
      lastBucket: this.lastBucket,
      lastClose: this.lastClose,
      last: this.last ? { ...this.last } : undefined,
      ringBucket: this.ringBucket.slice(),
      ringClose: this.ringClose.slice(),
      ringHead: this.ringHead,
      ringSize: this.ringSize,
      indicatorInputs: this.indicators.fedInputs(),
      indicatorInputsFrom: this.indicators.inputsFrom,
    };
  }

  /** Take the state `s` (from `state()` of a series of the same step and ring capacity). */
  async load(s: CandleSeriesState, pace?: Pacer): Promise<void> {
    if (s.ringBucket.length !== this.ringBucket.length || s.ringClose.length !== this.ringClose.length)
      throw new RangeError(
        `candle ring: ${s.ringBucket.length} closes stored, capacity ${this.ringBucket.length}`,
      );
    const from = s.indicatorInputsFrom ?? 0;
    const candles = s.indicatorInputs.length / INPUT_WIDTH;
    // `closedCount` is written to snapshots but not restored: it is the count of candles the restored
    // indicators have been fed (`from + candles`), which a snapshot whose two disagree would silently change
    if (s.closedCount !== from + candles)
      throw new RangeError(
        `candle series: ${s.closedCount} candles closed, but its indicators keep ${candles} from candle ${from}`,
      );
    this.gapSteps = s.gapSteps;
    this.bucket = s.bucket;
    this.hasMark = s.hasMark;
    this.open = s.open;
    this.high = s.high;
    this.low = s.low;
    this.close = s.close;
    this.volume = s.volume;
    this.lastBucket = s.lastBucket;
    this.lastClose = s.lastClose;
    this.last = s.last ? { ...s.last } : undefined;
    this.ringBucket.set(s.ringBucket);
    this.ringClose.set(s.ringClose);
    this.ringHead = s.ringHead;
    this.ringSize = s.ringSize;
    this.indicators = await CandleIndicators.restore(this.periods, s.indicatorInputs, pace, from);
  }

  private roll(b: number): void {
    if (this.hasMark) this.emit();
    this.bucket = b;
    this.hasMark = false;
    this.volume = 0;
  }

  private emit(): void {
    let stepReturn = Number.NaN;
    if (this.lastBucket >= 0) {
      const gap = this.bucket - this.lastBucket;
      stepReturn = Math.log(this.close / this.lastClose) / Math.sqrt(gap);
      this.gapSteps += gap - 1;
    }
    this.indicators.push(this.high, this.low, this.close, stepReturn);
    this.last = {
      bucket: this.bucket,
      open: this.open,
      high: this.high,
      low: this.low,
      close: this.close,
      volume: this.volume,
    };
    this.lastBucket = this.bucket;
    this.lastClose = this.close;
    const cap = this.ringBucket.length;
    if (cap > 0) {
      this.ringBucket[this.ringHead] = this.bucket;
      this.ringClose[this.ringHead] = this.close;
      this.ringHead = (this.ringHead + 1) % cap;
      if (this.ringSize < cap) this.ringSize++;
    }
    this.hasMark = false;
  }
}
