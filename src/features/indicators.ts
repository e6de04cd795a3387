/**
 * The one wrapper around `technicalindicators`: ATR, Bollinger bands, RSI and the standard deviation of log
 * returns, fed one closed candle at a time through the library's streaming `nextValue`. Values are NaN until
 * the indicator has seen enough candles (callers map NaN to a neutral value plus a missing flag; NaN never
 * leaves the feature pipeline).
 *
 * Two quirks of technicalindicators 3.1 are handled here, not patched:
 * - its `SD` stops iterating its window at the first value that is exactly 0 and skips a window whose mean
 *   is 0, so the log returns are fed shifted by +1 (the standard deviation does not change under a shift);
 * - its `SD` is the population standard deviation (divides by the period, not period - 1).
 * The global `precision` setting of the library is bypassed by passing an identity `format`.
 *
 * Snapshots: the library's streaming state lives in generator closures that cannot be read or set, and
 * several parts of it (SMA's running sum, Wilder smoothing) depend on every value ever fed, in float
 * arithmetic. So, when built to `record` (only the evaluator's shard state with snapshots enabled), every
 * candle fed is recorded (`inputs`, 4 float64 per candle: 32 bytes) and a restore feeds the same values to
 * fresh indicators: the restored state is the same, bit for bit. That record grows by one entry per closed
 * candle, for the life of the series. Without `record` (the default: backtests, training, featurize) nothing
 * is kept and `fedInputs` refuses.
 */
import { ATR, BollingerBands, RSI, SD } from 'technicalindicators';
import type { Pacer } from './pace.js';

export interface IndicatorPeriods {
  /** candles */
  atr: number;
  rsi: number;
  bb: number;
  /** Bollinger width in standard deviations */
  bbStdDev: number;
  /** number of log returns in the realised-volatility window */
  vol: number;
}

const identity = (v: number): number => v;

/** Shift applied to log returns before the library's SD (see the header). */
const RETURN_SHIFT = 1;

/** float64 values recorded per candle fed (high, low, close, stepReturn) */
export const INPUT_WIDTH = 4;

export class CandleIndicators {
  private readonly atrInd: ATR;
  private readonly rsiInd: RSI;
  private readonly bbInd: BollingerBands;
  private readonly sdInd: SD;

  /** Average true range, price units */
  atr = Number.NaN;
  /** RSI in [0, 100] */
  rsi = Number.NaN;
  /** (upper - lower) / middle */
  bbBandwidth = Number.NaN;
  /** population std of the last `vol` per-step log returns (gap-scaled, see CandleSeries) */
  returnStd = Number.NaN;
  /** close of the last candle fed, price */
  lastClose = Number.NaN;

  /** every candle fed: high, low, close, stepReturn (INPUT_WIDTH float64 each); grows by doubling */
  private inputs = new Float64Array(0);
  /** candles fed */
  private fed = 0;

  constructor(
    readonly periods: IndicatorPeriods,
    /** keep every candle fed, for `fedInputs` (snapshots); off: nothing is kept */
    readonly record = false,
  ) {
    this.atrInd = new ATR({ period: periods.atr, high: [], low: [], close: [], format: identity });
    this.rsiInd = new RSI({ period: periods.rsi, values: [], format: identity });
    this.bbInd = new BollingerBands({
      period: periods.bb,
      stdDev: periods.bbStdDev,
      values: [],
      format: identity,
    });
    this.sdInd = new SD({ period: periods.vol, values: [], format: identity });
  }

  /**
   * Feed one closed candle. `stepReturn` is its per-step log return from the previous candle (already divided
   * by sqrt(gap steps)), or NaN for the first candle of a series.
   */
  push(high: number, low: number, close: number, stepReturn: number): void {
    if (this.record) this.keep(high, low, close, stepReturn);
    const atr = this.atrInd.nextValue({ high, low, close });
    if (atr !== undefined) this.atr = atr;
    const rsi = this.rsiInd.nextValue(close);
    if (rsi !== undefined) this.rsi = rsi;
    const bb = this.bbInd.nextValue(close);
    if (bb !== undefined && bb.middle > 0) this.bbBandwidth = (bb.upper - bb.lower) / bb.middle;
    if (!Number.isNaN(stepReturn)) {
      let shifted = stepReturn + RETURN_SHIFT;
      // a return of exactly -1 would hit the library's zero quirk; nudge it by one ulp-scale step
      if (shifted === 0) shifted = Number.EPSILON;
      const sd = this.sdInd.nextValue(shifted);
      if (sd !== undefined) this.returnStd = sd;
    }
    this.lastClose = close;
  }

  private keep(high: number, low: number, close: number, stepReturn: number): void {
    const o = this.fed * INPUT_WIDTH;
    if (o + INPUT_WIDTH > this.inputs.length) {
      const next = new Float64Array(Math.max(64 * INPUT_WIDTH, this.inputs.length * 2));
      next.set(this.inputs);
      this.inputs = next;
    }
    this.inputs[o] = high;
    this.inputs[o + 1] = low;
    this.inputs[o + 2] = close;
    this.inputs[o + 3] = stepReturn;
    this.fed++;
  }

  /** The candles fed so far (a copy: INPUT_WIDTH float64 per candle), from which `restore` rebuilds the state. */
  fedInputs(): Float64Array {
    if (!this.record)
      throw new Error(
        'indicator inputs were not recorded: build the pipeline with recordForSnapshots to save its state',
      );
    return this.inputs.slice(0, this.fed * INPUT_WIDTH);
  }

  /**
   * Fresh (recording) indicators fed `inputs` (from `fedInputs`): the same state as the ones that recorded
   * them. Yields to the event loop as `pace` says (one unit per candle).
   */
  static async restore(
    periods: IndicatorPeriods,
    inputs: Float64Array,
    pace?: Pacer,
  ): Promise<CandleIndicators> {
    if (inputs.length % INPUT_WIDTH !== 0)
      throw new RangeError(`indicator inputs: ${inputs.length} values is not a whole number of candles`);
    const ind = new CandleIndicators(periods, true);
    for (let o = 0; o < inputs.length; o += INPUT_WIDTH) {
      ind.push(inputs[o]!, inputs[o + 1]!, inputs[o + 2]!, inputs[o + 3]!);
      if (pace?.count(1)) await pace.pause();
    }
    return ind;
  }
}
