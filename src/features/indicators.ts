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
 * arithmetic: the only way to rebuild it is to feed the same candles again. So that neither a shard snapshot
 * nor its restore grows with the life of a series, the indicators are **rebased** on a fixed schedule: from
 * the K-th candle on (K = `REBASE_CANDLES`), a second set of library indicators (the shadow) is fed beside the
 * live one, started fresh at every multiple of K; at each multiple of K from 2K on the shadow, fed the last K
 * candles only, becomes the live set and a fresh shadow starts. Every value is then a function of at most the
 * last 2K candles (the same state as fresh indicators fed them from the last multiple of K before the last
 * rebase), so a snapshot keeps only those and a restore that feeds them under the same schedule rebuilds the
 * same state bit for bit. The swap costs nothing at the time (no re-feed, no stall: every candle feeds two
 * sets from K on). What a rebase forgets is worth nothing: ATR and RSI are Wilder averages over 14 candles,
 * whose weight on a candle K = 1,024 candles back is (13/14)^1024, about 1e-33 (below float64 resolution);
 * Bollinger bands and the volatility are windows of at most 60 candles. One exception, handled: in a market
 * whose close has not moved for many candles both of RSI's averages decay towards 0 and their ratio keeps
 * the memory of moves arbitrarily far back (and a set that never saw a move says 100); so once the close has
 * been unchanged for `FLAT_RSI_PERIODS` RSI periods, RSI is 50 (no momentum), whatever set computes it. (Not
 * a schema change in practice: the named scenarios' simulated marks never stay unchanged for more than 2
 * candles, measured 2026-12-06.)
 * Backtests, training and the service compute the same numbers; only a pipeline built to save its state
 * (`record`) keeps the candles (`INPUT_WIDTH` float64 each, at most 2K - 1: 64 KiB per series).
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

/** RSI periods of an unchanged close after which RSI is 50 (see the header). */
export const FLAT_RSI_PERIODS = 3;

/** One set of the library's streaming indicators (state in closures), with its latest values. */
class LibSet {
  private readonly atrInd: ATR;
  private readonly rsiInd: RSI;
  private readonly bbInd: BollingerBands;
  private readonly sdInd: SD;
  private readonly flatRsiAfter: number;
  atr = Number.NaN;
  rsi = Number.NaN;
  bbBandwidth = Number.NaN;
  returnStd = Number.NaN;
  /** price, of the last candle fed */
  private lastClose = Number.NaN;
  /** candles in a row whose close equals the one before (this set's) */
  private flatRun = 0;

  constructor(periods: IndicatorPeriods) {
    this.atrInd = new ATR({ period: periods.atr, high: [], low: [], close: [], format: identity });
    this.rsiInd = new RSI({ period: periods.rsi, values: [], format: identity });
    this.bbInd = new BollingerBands({
      period: periods.bb,
      stdDev: periods.bbStdDev,
      values: [],
      format: identity,
    });
    this.sdInd = new SD({ period: periods.vol, values: [], format: identity });
    this.flatRsiAfter = FLAT_RSI_PERIODS * periods.rsi;
  }

  push(high: number, low: number, close: number, stepReturn: number): void {
    const atr = this.atrInd.nextValue({ high, low, close });
    if (atr !== undefined) this.atr = atr;
    this.flatRun = close === this.lastClose ? this.flatRun + 1 : 0;
    this.lastClose = close;
    const rsi = this.rsiInd.nextValue(close);
    if (rsi !== undefined) this.rsi = this.flatRun >= this.flatRsiAfter ? 50 : rsi;
    const bb = this.bbInd.nextValue(close);
    if (bb !== undefined && bb.middle > 0) this.bbBandwidth = (bb.upper - bb.lower) / bb.middle;
    if (!Number.isNaN(stepReturn)) {
      let shifted = stepReturn + RETURN_SHIFT;
      // a return of exactly -1 would hit the library's zero quirk; nudge it by one ulp-scale step
      if (shifted === 0) shifted = Number.EPSILON;
      const sd = this.sdInd.nextValue(shifted);
      if (sd !== undefined) this.returnStd = sd;
    }
  }
}

export class CandleIndicators {
  /** the set whose values are read */
  private live: LibSet;
  /** the set started at the last multiple of K (from K on), live at the next */
  private shadow: LibSet | undefined;

  /** candles fed over the life of the series */
  private fed = 0;
  /** index (in candles fed) of the first candle in `kept` */
  private keptFrom = 0;
  /** with `record`: the candles from `keptFrom` on, INPUT_WIDTH float64 each, fewer than 2K */
  private kept = new Float64Array(0);

  constructor(
    readonly periods: IndicatorPeriods,
    /** keep the candles `fedInputs` returns (for snapshots); off: nothing is kept and `fedInputs` refuses */
    readonly record = false,
  ) {
    const longest = Math.max(periods.atr, periods.rsi, periods.bb, periods.vol);
    if (longest * MIN_REBASE_OVER_PERIOD > REBASE_CANDLES)
      throw new RangeError(
        `indicator period ${longest} is too long for a rebase every ${REBASE_CANDLES} candles`,
      );
    this.live = new LibSet(periods);
  }

  /** Average true range, price units */
  get atr(): number {
    return this.live.atr;
  }
  /** RSI in [0, 100] (50 after a long unchanged close) */
  get rsi(): number {
    return this.live.rsi;
  }
  /** (upper - lower) / middle */
  get bbBandwidth(): number {
    return this.live.bbBandwidth;
  }
  /** population std of the last `vol` per-step log returns (gap-scaled, see CandleSeries) */
  get returnStd(): number {
    return this.live.returnStd;
  }
  /** close of the last candle fed, price (NaN before any) */
  lastClose = Number.NaN;

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
    // the first shadow starts at candle K; later ones at each rebase
    if (this.fed === REBASE_CANDLES) this.shadow = new LibSet(this.periods);
    if (this.record) this.keep(high, low, close, stepReturn);
    this.live.push(high, low, close, stepReturn);
    this.shadow?.push(high, low, close, stepReturn);
    this.lastClose = close;
    this.fed++;
    if (this.fed % REBASE_CANDLES === 0 && this.fed >= 2 * REBASE_CANDLES) this.rebase();
  }

  /**
   * The shadow, fed the last K candles, becomes live and a fresh shadow starts; the kept candles before those
   * K are dropped.
   */
  private rebase(): void {
    this.live = this.shadow!;
    this.shadow = new LibSet(this.periods);
    const from = this.fed - REBASE_CANDLES;
    if (this.record) {
      const o = (from - this.keptFrom) * INPUT_WIDTH;
      this.kept.copyWithin(0, o, o + REBASE_CANDLES * INPUT_WIDTH);
    }
    this.keptFrom = from;
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
   * `restore` rebuilds the state: fewer than 2 * REBASE_CANDLES, however long the series has run.
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
   * for bit. Refuses inputs no series could have kept. Yields to the event loop as `pace` says (one unit per
   * candle).
   */
  static async restore(
    periods: IndicatorPeriods,
    inputs: Float64Array,
    pace?: Pacer,
    from = 0,
  ): Promise<CandleIndicators> {
    if (inputs.length % INPUT_WIDTH !== 0)
      throw new RangeError(`indicator inputs: ${inputs.length} values is not a whole number of candles`);
    const n = inputs.length / INPUT_WIDTH;
    // the state at a rebase is built from its window alone: a restore can start only at one (or at 0), and
    // a series past its first rebase keeps from K to 2K - 1 candles
    if (!Number.isSafeInteger(from) || from < 0 || from % REBASE_CANDLES !== 0)
      throw new RangeError(`indicator inputs: they start at candle ${from}, not at a rebase window`);
    if (!Number.isSafeInteger(from + n))
      throw new RangeError(`indicator inputs: ${from} + ${n} candles is past the safe integers`);
    if (from > 0 && (n < REBASE_CANDLES || n >= 2 * REBASE_CANDLES))
      throw new RangeError(
        `indicator inputs: ${n} candles from candle ${from}; a series past its first rebase keeps ${REBASE_CANDLES} to ${2 * REBASE_CANDLES - 1}`,
      );
    const ind = new CandleIndicators(periods, true);
    ind.fed = from;
    ind.keptFrom = from;
    // past the first rebase the series restarts at a window start, where the shadow started fresh too
    if (from > 0) ind.shadow = new LibSet(periods);
    for (let o = 0; o < inputs.length; o += INPUT_WIDTH) {
      ind.push(inputs[o]!, inputs[o + 1]!, inputs[o + 2]!, inputs[o + 3]!);
      if (pace?.count(1)) await pace.pause();
    }
    return ind;
  }
}
