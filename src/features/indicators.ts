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
 */
import { ATR, BollingerBands, RSI, SD } from 'technicalindicators';

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

  constructor(readonly periods: IndicatorPeriods) {
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
}
