/**
 * Market state of one instrument, fed by `mark`, `trade`, `book` and `funding` events: candles at 1 m, 5 m
 * and 1 h with their indicators, decayed buy/sell aggressor volume, the last book and the last funding
 * rate. `view(T)` turns it into the per-instrument numbers the feature rows use, with NaN-free fallbacks
 * and explicit missing flags. Which series feeds what:
 * - 1 m candles: fast realised vol (std of 60 returns), the 60 min return, sigma over the horizon;
 * - 5 m candles: ATR(14), RSI(14), Bollinger(20, 2) bandwidth;
 * - 1 h candles: slow realised vol (std of 24 returns).
 * Annualisation: std of per-step log returns times sqrt(steps per 365-day year) (1 m: sqrt(525600),
 * 1 h: sqrt(8760)); sigma_h = 1 m std * sqrt(horizon minutes), else 1 h std * sqrt(horizon / 60), else the
 * default annual vol scaled to the horizon.
 */

import type { RateNorm } from './account-flow.js';
import { CandleSeries, type CandleSeriesState } from './candles.js';
import { decayFactor } from './decay.js';
import type { Pacer } from './pace.js';
import { FEATURE_PARAMS as P } from './schema.js';

const MINUTE_MS = 60_000;
const HOUR_MS = 3_600_000;
const PERIODS_FAST = {
  atr: P.atrPeriod,
  rsi: P.rsiPeriod,
  bb: P.bbPeriod,
  bbStdDev: P.bbStdDev,
  vol: P.volFastCandles,
};
const PERIODS_SLOW = { ...PERIODS_FAST, vol: P.volSlowCandles };
/** 1 m closes kept for the horizon return (horizon + slack) */
const RING_1M = P.horizonMin + 68;

/** Per-instrument numbers at a snapshot time. NaN never appears: missing inputs carry the flags. */
export interface MarketView {
  /** USD: last mark (NaN when no mark was seen; positions then use the margin core's price) */
  mark: number;
  volFastAnn: number; // fraction per sqrt(year)
  volSlowAnn: number; // fraction per sqrt(year)
  sigmaH: number; // fraction: std of the log move over the horizon
  volRatio: number; // fast / slow
  atrPct: number; // % of the last close
  bbBandwidth: number; // fraction
  rsiCentered: number; // (RSI - 50) / 50, in [-1, 1]
  ret1h: number; // ln(mark now / mark horizon ago)
  imbalance: number; // (buy - sell) / (buy + sell), in [-1, 1]
  volumeSurge: number; // fast rate / slow rate
  spreadBps: number; // bps of mid
  bidDepth: number; // contracts within 1% below mid
  askDepth: number; // contracts within 1% above mid
  fundingRate: number; // fraction per settlement, last
  markAgeMin: number; // minutes since the last mark, capped
  volMissing: boolean;
  volSlowMissing: boolean;
  indicatorsMissing: boolean;
  tradesMissing: boolean;
  bookMissing: boolean;
}

export function emptyMarketView(): MarketView {
  return {
    mark: Number.NaN,
    volFastAnn: P.defaultAnnualVol,
    volSlowAnn: P.defaultAnnualVol,
    sigmaH: P.defaultAnnualVol * Math.sqrt(P.horizonMin / P.minutesPerYear),
    volRatio: 1,
    atrPct: 0,
    bbBandwidth: 0,
    rsiCentered: 0,
    ret1h: 0,
    imbalance: 0,
    volumeSurge: 1,
    spreadBps: 0,
    bidDepth: 0,
    askDepth: 0,
    fundingRate: 0,
    markAgeMin: P.markAgeCapMin,
    volMissing: true,
    volSlowMissing: true,
    indicatorsMissing: true,
    tradesMissing: true,
    bookMissing: true,
  };
}

/** Everything an InstrumentMarket holds (see `InstrumentMarket.state`). */
export interface InstrumentMarketState {
  symbol: string;
  m1: CandleSeriesState;
  m5: CandleSeriesState;
  h1: CandleSeriesState;
  contractSize: number;
  lastMark: number;
  lastMarkTs: number;
  buyUsd: number;
  sellUsd: number;
  slowUsd: number;
  flowTs: number;
  lastTradeTs: number;
  bid: number;
  ask: number;
  bidDepth: number;
  askDepth: number;
  bookTs: number;
  fundingRate: number;
}

export class InstrumentMarket {
  readonly m1: CandleSeries;
  readonly m5: CandleSeries;
  readonly h1: CandleSeries;
  /** units of base per contract (from the instrument event) */
  contractSize = 1;
  lastMark = Number.NaN; // USD
  lastMarkTs = -1; // ms
  // aggressor volume, decayed to flowTs
  private buyUsd = 0; // USD, fast window
  private sellUsd = 0; // USD, fast window
  private slowUsd = 0; // USD, slow window
  private flowTs = 0; // ms
  lastTradeTs = -1; // ms
  // last book
  bid = Number.NaN; // USD
  ask = Number.NaN; // USD
  bidDepth = 0; // contracts
  askDepth = 0; // contracts
  bookTs = -1; // ms
  fundingRate = 0; // fraction per settlement

  constructor(
    readonly symbol: string,
    /** may the candle state be saved (for snapshots; see CandleIndicators.record) */
    record = false,
  ) {
    this.m1 = new CandleSeries(MINUTE_MS, PERIODS_FAST, RING_1M, record);
    this.m5 = new CandleSeries(5 * MINUTE_MS, PERIODS_FAST, 0, record);
    this.h1 = new CandleSeries(HOUR_MS, PERIODS_SLOW, 0, record);
  }

  onMark(ts: number, price: number): void {
    this.m1.onMark(ts, price);
    this.m5.onMark(ts, price);
    this.h1.onMark(ts, price);
    this.lastMark = price;
    this.lastMarkTs = ts;
  }

  /** qty in contracts, price in USD */
  onTrade(ts: number, price: number, qty: number, buyAggressor: boolean): void {
    this.m1.onTrade(ts, qty);
    this.m5.onTrade(ts, qty);
    this.h1.onTrade(ts, qty);
    const usd = qty * this.contractSize * price;
    this.decayTo(ts);
    if (buyAggressor) this.buyUsd += usd;
    else this.sellUsd += usd;
    this.slowUsd += usd;
    this.lastTradeTs = ts;
  }

  onBook(ts: number, bid: number, ask: number, bidDepth: number, askDepth: number): void {
    this.bid = bid;
    this.ask = ask;
    this.bidDepth = bidDepth;
    this.askDepth = askDepth;
    this.bookTs = ts;
  }

  onFunding(rate: number): void {
    this.fundingRate = rate;
  }

  /** Close every candle whose step ended at or before `ts`. */
  advanceTo(ts: number): void {
    this.m1.advanceTo(ts);
    this.m5.advanceTo(ts);
    this.h1.advanceTo(ts);
  }

  /** A copy of the whole state (for shard snapshots). */
  state(): InstrumentMarketState {
    return {
      symbol: this.symbol,
      m1: this.m1.state(),
      m5: this.m5.state(),
      h1: this.h1.state(),
      contractSize: this.contractSize,
      lastMark: this.lastMark,
      lastMarkTs: this.lastMarkTs,
      buyUsd: this.buyUsd,
      sellUsd: this.sellUsd,
      slowUsd: this.slowUsd,
      flowTs: this.flowTs,
      lastTradeTs: this.lastTradeTs,
      bid: this.bid,
      ask: this.ask,
      bidDepth: this.bidDepth,
      askDepth: this.askDepth,
      bookTs: this.bookTs,
      fundingRate: this.fundingRate,
    };
  }

  static async fromState(s: InstrumentMarketState, pace?: Pacer): Promise<InstrumentMarket> {
    const m = new InstrumentMarket(s.symbol, true);
    await m.m1.load(s.m1, pace);
    await m.m5.load(s.m5, pace);
    await m.h1.load(s.h1, pace);
    m.contractSize = s.contractSize;
    m.lastMark = s.lastMark;
    m.lastMarkTs = s.lastMarkTs;
    m.buyUsd = s.buyUsd;
    m.sellUsd = s.sellUsd;
    m.slowUsd = s.slowUsd;
    m.flowTs = s.flowTs;
    m.lastTradeTs = s.lastTradeTs;
    m.bid = s.bid;
    m.ask = s.ask;
    m.bidDepth = s.bidDepth;
    m.askDepth = s.askDepth;
    m.bookTs = s.bookTs;
    m.fundingRate = s.fundingRate;
    return m;
  }

  private decayTo(ts: number): void {
    const dt = ts - this.flowTs;
    if (dt > 0) {
      const f = decayFactor(dt, P.fastTauMs);
      this.buyUsd *= f;
      this.sellUsd *= f;
      this.slowUsd *= decayFactor(dt, P.slowTauMs);
      this.flowTs = ts;
    }
  }

  /** Fill `out` with the view at `ts` (call `advanceTo(ts)` first); `norm` from `rateNorm(observed ms)`. */
  view(ts: number, norm: RateNorm, out: MarketView): MarketView {
    out.mark = this.lastMark;
    const sd1m = this.m1.indicators.returnStd;
    const sd1h = this.h1.indicators.returnStd;
    const back = this.m1.closeAtOrBefore(Math.floor((ts - P.horizonMin * MINUTE_MS) / MINUTE_MS) - 1);
    out.volMissing = Number.isNaN(sd1m) || Number.isNaN(back);
    out.volSlowMissing = Number.isNaN(sd1h);
    out.volFastAnn = Number.isNaN(sd1m) ? P.defaultAnnualVol : sd1m * Math.sqrt(P.minutesPerYear);
    out.volSlowAnn = Number.isNaN(sd1h) ? P.defaultAnnualVol : sd1h * Math.sqrt(P.minutesPerYear / 60);
    if (!Number.isNaN(sd1m)) out.sigmaH = sd1m * Math.sqrt(P.horizonMin);
    else if (!Number.isNaN(sd1h)) out.sigmaH = sd1h * Math.sqrt(P.horizonMin / 60);
    else out.sigmaH = P.defaultAnnualVol * Math.sqrt(P.horizonMin / P.minutesPerYear);
    out.volRatio =
      Number.isNaN(sd1m) || Number.isNaN(sd1h) || out.volSlowAnn <= 0
        ? 1
        : Math.min(10, out.volFastAnn / out.volSlowAnn);
    out.ret1h = Number.isNaN(back) || Number.isNaN(this.lastMark) ? 0 : Math.log(this.lastMark / back);

    const ind = this.m5.indicators;
    out.indicatorsMissing = Number.isNaN(ind.atr) || Number.isNaN(ind.rsi) || Number.isNaN(ind.bbBandwidth);
    out.atrPct = Number.isNaN(ind.atr) || !(ind.lastClose > 0) ? 0 : (100 * ind.atr) / ind.lastClose;
    out.bbBandwidth = Number.isNaN(ind.bbBandwidth) ? 0 : ind.bbBandwidth;
    out.rsiCentered = Number.isNaN(ind.rsi) ? 0 : (ind.rsi - 50) / 50;

    const dt = ts - this.flowTs;
    const fast = (this.buyUsd + this.sellUsd) * decayFactor(dt, P.fastTauMs);
    const slow = this.slowUsd * decayFactor(dt, P.slowTauMs);
    out.tradesMissing = this.lastTradeTs < 0 || ts - this.lastTradeTs > 3 * P.fastTauMs;
    out.imbalance =
      out.tradesMissing || !(fast > 0) ? 0 : (this.buyUsd - this.sellUsd) / (this.buyUsd + this.sellUsd);
    const fastRate = fast * norm.perHour;
    const slowRate = (slow * norm.perDay) / 24; // per day -> per hour
    out.volumeSurge = out.tradesMissing || !(slowRate > 0) ? 1 : Math.min(20, fastRate / slowRate);

    out.bookMissing = this.bookTs < 0 || ts - this.bookTs > P.fastTauMs;
    if (out.bookMissing) {
      out.spreadBps = 0;
      out.bidDepth = 0;
      out.askDepth = 0;
    } else {
      const mid = (this.bid + this.ask) / 2;
      out.spreadBps = (1e4 * (this.ask - this.bid)) / mid;
      out.bidDepth = this.bidDepth;
      out.askDepth = this.askDepth;
    }
    out.fundingRate = this.fundingRate;
    out.markAgeMin =
      this.lastMarkTs < 0
        ? P.markAgeCapMin
        : Math.min(P.markAgeCapMin, Math.max(0, ts - this.lastMarkTs) / MINUTE_MS);
    return out;
  }
}
