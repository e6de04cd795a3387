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
 * Bounded state, exact snapshots. The library's streaming state lives in generator closures that cannot be
 * read or set, and parts of it (SMA's running sum, Wilder smoothing) depend on every value ever fed, in float
 * arithmetic: the only way to rebuild it is to feed the same candles again. So that neither memory nor a
 * shard snapshot grows with the life of a series, the indicators are **rebased** on a fixed schedule: each
 * time the count of candles fed reaches a multiple of `REBASE_CANDLES` (K, from 2K on), fresh indicators are
 * built from the last K candles only. Every value is then a function of at most the last 2K candles, and a
 * restore that feeds those (from the last rebase's window start, under the same schedule) rebuilds the same
 * state bit for bit. What a rebase forgets is worth nothing: ATR and RSI are Wilder averages over 14 candles,
 * whose weight on a candle K = 1,024 candles back is (13/14)^1024, about 1e-33 (below float64 resolution);
 * Bollinger bands and the volatility are windows of at most 60 candles. The candles kept (`INPUT_WIDTH`
 * float64 each, at most 2K: 64 KiB per series) are the same whoever builds the indicators, so backtests,
 * training and the service compute the same numbers.
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

/** float64 values kept per candle fed (high, low, close, stepReturn) */
export const INPUT_WIDTH = 4;

/**
 * Candles between rebases, and the window a rebase feeds (see the header). Not a feature parameter: below
 * float64 resolution it changes no feature, so it is not in the schema hash; it is part of what a snapshot
 * holds (the snapshot format version).
 */
export const REBASE_CANDLES = 1024;

/** A rebase's window must cover many times the longest memory of a windowed indicator. */
const MIN_REBASE_OVER_PERIOD = 8;

/** The library's streaming indicators (state in closures). */
interface Lib {
  atr: ATR;
  rsi: RSI;
  bb: BollingerBands;
  sd: SD;
}

function freshLib(periods: IndicatorPeriods): Lib {
  return {
    atr: new ATR({ period: periods.atr, high: [], low: [], close: [], format: identity }),
    rsi: new RSI({ period: periods.rsi, values: [], format: identity }),
    bb: new BollingerBands({ period: periods.bb, stdDev: periods.bbStdDev, values: [], format: identity }),
    sd: new SD({ period: periods.vol, values: [], format: identity }),
  };
}

export class CandleIndicators {
  private lib: Lib;

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

  /** candles fed over the life of the series */
  private fed = 0;
  /** index (in candles fed) of the first candle in `kept` */
  private keptFrom = 0;
  /** the candles from `keptFrom` on: high, low, close, stepReturn (INPUT_WIDTH float64 each), at most 2K */
  private kept = new Float64Array(0);

  constructor(
    readonly periods: IndicatorPeriods,
    /** may `fedInputs` be read (the pipeline was built for snapshots)? The candles are kept either way. */
    readonly record = false,
  ) {
    const longest = Math.max(periods.atr, periods.rsi, periods.bb, periods.vol);
    if (longest * MIN_REBASE_OVER_PERIOD > REBASE_CANDLES)
      throw new RangeError(
        `indicator period ${longest} is too long for a rebase every ${REBASE_CANDLES} candles`,
      );
    this.lib = freshLib(periods);
  }

  /** candles fed over the life of the series */
  get candlesFed(): number {
    return this.fed;
  }

  /** index (in candles fed) of the first candle `fedInputs` returns */
  get inputsFrom(): number {
    return this.keptFrom;
  }

  /**
   * Feed one closed candle. `stepReturn` is its per-step log return from the previous candle (already divided
   * by sqrt(gap steps)), or NaN for the first candle of a series.
   */
  push(high: number, low: number, close: number, stepReturn: number): void {
    this.keep(high, low, close, stepReturn);
    this.feedLib(high, low, close, stepReturn);
    this.fed++;
    if (this.fed % REBASE_CANDLES === 0 && this.fed >= 2 * REBASE_CANDLES) this.rebase();
  }

  private feedLib(high: number, low: number, close: number, stepReturn: number): void {
    const atr = this.lib.atr.nextValue({ high, low, close });
    if (atr !== undefined) this.atr = atr;
    const rsi = this.lib.rsi.nextValue(close);
    if (rsi !== undefined) this.rsi = rsi;
    const bb = this.lib.bb.nextValue(close);
    if (bb !== undefined && bb.middle > 0) this.bbBandwidth = (bb.upper - bb.lower) / bb.middle;
    if (!Number.isNaN(stepReturn)) {
      let shifted = stepReturn + RETURN_SHIFT;
      // a return of exactly -1 would hit the library's zero quirk; nudge it by one ulp-scale step
      if (shifted === 0) shifted = Number.EPSILON;
      const sd = this.lib.sd.nextValue(shifted);
      if (sd !== undefined) this.returnStd = sd;
    }
    this.lastClose = close;
  }

  /** Fresh indicators fed the last K candles; the candles before them are dropped. */
  private rebase(): void {
    const from = this.fed - REBASE_CANDLES;
    const o = (from - this.keptFrom) * INPUT_WIDTH;
    const n = REBASE_CANDLES * INPUT_WIDTH;
    this.kept.copyWithin(0, o, o + n);
    this.keptFrom = from;
    this.lib = freshLib(this.periods);
    this.atr = Number.NaN;
    this.rsi = Number.NaN;
    this.bbBandwidth = Number.NaN;
    this.returnStd = Number.NaN;
    const k = this.kept;
    for (let i = 0; i < n; i += INPUT_WIDTH) this.feedLib(k[i]!, k[i + 1]!, k[i + 2]!, k[i + 3]!);
  }

  private keep(high: number, low: number, close: number, stepReturn: number): void {
    const o = (this.fed - this.keptFrom) * INPUT_WIDTH;
    if (o + INPUT_WIDTH > this.kept.length) {
      const cap = Math.min(
        2 * REBASE_CANDLES * INPUT_WIDTH,
        Math.max(64 * INPUT_WIDTH, this.kept.length * 2),
      );
      const next = new Float64Array(cap);
      next.set(this.kept);
      this.kept = next;
    }
    this.kept[o] = high;
    this.kept[o + 1] = low;
    this.kept[o + 2] = close;
    this.kept[o + 3] = stepReturn;
  }

  /**
   * The candles kept (a copy: INPUT_WIDTH float64 per candle), fed from candle `inputsFrom` on, from which
   * `restore` rebuilds the state: at most 2 * REBASE_CANDLES, however long the series has run.
   */
  fedInputs(): Float64Array {
    if (!this.record)
      throw new Error(
        'indicator inputs were not recorded: build the pipeline with recordForSnapshots to save its state',
      );
    return this.kept.slice(0, (this.fed - this.keptFrom) * INPUT_WIDTH);
  }

  /**
   * Fresh (recording) indicators fed `inputs` (from `fedInputs`), the first of them the series' candle `from`
   * (`inputsFrom`; 0 for a snapshot that kept every candle): the same state as the ones that kept them, bit
   * for bit. Yields to the event loop as `pace` says (one unit per candle).
   */
  static async restore(
    periods: IndicatorPeriods,
    inputs: Float64Array,
    pace?: Pacer,
    from = 0,
  ): Promise<CandleIndicators> {
    if (inputs.length % INPUT_WIDTH !== 0)
      throw new RangeError(`indicator inputs: ${inputs.length} values is not a whole number of candles`);
    // the state at a rebase is built from its window alone: a restore can start only at one (or at 0)
    if (!Number.isSafeInteger(from) || from < 0 || from % REBASE_CANDLES !== 0)
      throw new RangeError(`indicator inputs: they start at candle ${from}, not at a rebase window`);
    const ind = new CandleIndicators(periods, true);
    ind.fed = from;
    ind.keptFrom = from;
    for (let o = 0; o < inputs.length; o += INPUT_WIDTH) {
      ind.push(inputs[o]!, inputs[o + 1]!, inputs[o + 2]!, inputs[o + 3]!);
      if (pace?.count(1)) await pace.pause();
    }
    return ind;
  }
}
