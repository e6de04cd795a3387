/**
 * The feature definitions (name, unit, group, meaning, neutral value), in row order, and the parameters
 * that fix their meaning. Consumers import them through schema.ts, which adds the index, the hash and the
 * mismatch check.
 */
/** Parameters that fix what the features mean; they are part of the hash. */
export const FEATURE_PARAMS = {
  /** horizon of `sigma_h` and the distances in volatility units, minutes */
  horizonMin: 60,
  /** time constant of the fast decayed windows (order flow, market volume), ms */
  fastTauMs: 3_600_000,
  /** time constant of the slow decayed windows (deposits, withdrawals, liquidations, volume baseline), ms */
  slowTauMs: 86_400_000,
  /** decayed rates are divided by the observed part of the window, at least this long, ms */
  minObservedMs: 900_000,
  /**
   * equity peak for the drawdown: max of the equity sampled after the account's own margin-changing events
   * over the current and the previous bucket of this length (else the last sample), ms
   */
  peakBucketMs: 21_600_000,
  /** equity floor for ratios to equity (turnover, doubling down, deposits), USD */
  equityFloorUsd: 1,
  /** realised volatility: population std of this many 1 m log returns (fast) */
  volFastCandles: 60,
  /** ... and of this many 1 h log returns (slow) */
  volSlowCandles: 24,
  /** ATR and RSI period on 5 m candles */
  atrPeriod: 14,
  rsiPeriod: 14,
  /** Bollinger bands on 5 m candles: period and width in standard deviations */
  bbPeriod: 20,
  bbStdDev: 2,
  /** annualised volatility assumed where none is measured yet (fraction per sqrt(year)) */
  defaultAnnualVol: 0.8,
  /** minutes in a year (365 days, perps trade around the clock), for annualising */
  minutesPerYear: 525_600,
  /** a held instrument whose last mark is older than this is reported stale by `mark_age_min` (cap), minutes */
  markAgeCapMin: 60,
} as const;

export const FEATURE_SCHEMA_VERSION = 2;

export type FeatureGroup = 'flow' | 'margin' | 'market' | 'flag';

export interface FeatureDef {
  name: string;
  unit: string;
  group: FeatureGroup;
  meaning: string;
  /** value used when the input is missing (or there is nothing to measure) */
  neutral: number;
}

const P = FEATURE_PARAMS;
const DEFAULT_SIGMA_H = P.defaultAnnualVol * Math.sqrt(P.horizonMin / P.minutesPerYear);
const MARGIN_RATIO_LOG_MAX = Math.log(1000);

/** The schema, in row order. */
export const FEATURES = [
  // order flow of the account (decayed windows; see FEATURE_PARAMS)
  {
    name: 'order_rate_log1p',
    unit: 'ln(1+orders/h)',
    group: 'flow',
    neutral: 0,
    meaning: 'orders placed per hour, fast window',
  },
  {
    name: 'cancel_rate_log1p',
    unit: 'ln(1+cancels/h)',
    group: 'flow',
    neutral: 0,
    meaning: 'cancels per hour, fast window',
  },
  {
    name: 'fill_rate_log1p',
    unit: 'ln(1+fills/h)',
    group: 'flow',
    neutral: 0,
    meaning: 'own fills per hour, fast window',
  },
  {
    name: 'cancel_fill_log_ratio',
    unit: 'ln(ratio)',
    group: 'flow',
    neutral: 0,
    meaning: 'ln((1 + cancels/h) / (1 + fills/h)), fast window',
  },
  {
    name: 'taker_share',
    unit: 'fraction',
    group: 'flow',
    neutral: 0.5,
    meaning: 'taker fill notional / all fill notional, fast window (neutral when fills_missing)',
  },
  {
    name: 'fill_notional_log1p',
    unit: 'ln(1+USD/h)',
    group: 'flow',
    neutral: 0,
    meaning: 'fill notional traded per hour, fast window',
  },
  {
    name: 'turnover_log1p',
    unit: 'ln(1+1/h)',
    group: 'flow',
    neutral: 0,
    meaning: 'fill notional per hour / equity',
  },
  {
    name: 'double_down_log1p',
    unit: 'ln(1+1/h)',
    group: 'flow',
    neutral: 0,
    meaning: 'notional added to a losing position per hour / equity',
  },
  {
    name: 'cut_loss_log1p',
    unit: 'ln(1+1/h)',
    group: 'flow',
    neutral: 0,
    meaning: 'notional cut from a losing position per hour / equity',
  },
  {
    name: 'leverage_change_h',
    unit: 'x/h',
    group: 'flow',
    neutral: 0,
    meaning: 'leverage change caused by own fills, deposits and withdrawals per hour, clipped to +-100',
  },
  {
    name: 'deposit_log1p_d',
    unit: 'ln(1+1/d)',
    group: 'flow',
    neutral: 0,
    meaning: 'deposits per day / equity, slow window',
  },
  {
    name: 'withdrawal_log1p_d',
    unit: 'ln(1+1/d)',
    group: 'flow',
    neutral: 0,
    meaning: 'withdrawals per day / equity, slow window',
  },
  {
    name: 'since_topup_h',
    unit: 'h',
    group: 'flow',
    neutral: 24,
    meaning: 'hours since the last deposit, capped at 24 (neutral when topup_never)',
  },
  {
    name: 'drawdown',
    unit: 'fraction',
    group: 'flow',
    neutral: 0,
    meaning:
      '1 - equity / peak equity (sampled after own margin events, last 6-12 h, else the last sample), in [0, 1]',
  },
  {
    name: 'liq_rate_log1p_d',
    unit: 'ln(1+liquidations/d)',
    group: 'flow',
    neutral: 0,
    meaning: 'liquidation events per day, slow window',
  },
  {
    name: 'liq_recency',
    unit: 'fraction',
    group: 'flow',
    neutral: 0,
    meaning: 'exp(-hours since the last liquidation / 24); 0 = never',
  },
  {
    name: 'flow_coverage',
    unit: 'fraction',
    group: 'flow',
    neutral: 0,
    meaning: '1 - exp(-observed time / fast tau): how much of the fast window the pipeline has seen',
  },
  // margin state from the margin core
  {
    name: 'has_position',
    unit: 'bool',
    group: 'margin',
    neutral: 0,
    meaning: '1 when the account holds an open position',
  },
  {
    name: 'position_count',
    unit: 'count',
    group: 'margin',
    neutral: 0,
    meaning: 'open positions, capped at 20',
  },
  { name: 'equity_log', unit: 'sign*ln(1+|USD|)', group: 'margin', neutral: 0, meaning: 'account equity' },
  {
    name: 'margin_ratio_log',
    unit: 'ln(ratio)',
    group: 'margin',
    neutral: MARGIN_RATIO_LOG_MAX,
    meaning: 'ln(equity / maintenance margin) clipped to [ln 0.01, ln 1000]; no position = ln 1000',
  },
  {
    name: 'leverage',
    unit: 'x',
    group: 'margin',
    neutral: 0,
    meaning: 'gross notional / equity, in [0, 200]; 200 when equity <= 0 with a position',
  },
  {
    name: 'free_collateral_share',
    unit: 'fraction',
    group: 'margin',
    neutral: 0,
    meaning:
      'free collateral / equity in [-1, 1]; -1 when equity <= 0 with a position, 1 with no position and equity > 0',
  },
  {
    name: 'upnl_notional',
    unit: 'fraction',
    group: 'margin',
    neutral: 0,
    meaning: 'unrealised PnL / gross notional, in [-1, 1]',
  },
  {
    name: 'concentration',
    unit: 'fraction',
    group: 'margin',
    neutral: 0,
    meaning: 'largest position notional / gross notional',
  },
  {
    name: 'liq_dist_pct',
    unit: '%',
    group: 'margin',
    neutral: 100,
    meaning: 'min over positions of |mark - liquidation price| / mark, in [0, 100]',
  },
  {
    name: 'liq_dist_sigma',
    unit: 'sigma_h',
    group: 'margin',
    neutral: 50,
    meaning: 'min over positions of the distance to liquidation in horizon sigmas, in [0, 50]',
  },
  {
    name: 'buffer_sigma',
    unit: 'sigma_h',
    group: 'margin',
    neutral: 50,
    meaning:
      '(equity - MM) / sum(notional * sigma_h): cushion in horizon sigmas of a common move, in [-50, 50]',
  },
  {
    name: 'liq_slippage_bps',
    unit: 'bps',
    group: 'margin',
    neutral: 0,
    meaning:
      'expected slippage closing all positions into visible depth (half spread + 50 bps * size / depth), notional-weighted, in [0, 1000]',
  },
  // market state of the instruments held (notional-weighted over positions)
  {
    name: 'vol_fast_ann',
    unit: '1/sqrt(yr)',
    group: 'market',
    neutral: P.defaultAnnualVol,
    meaning: 'realised vol: std of 60 1 m log returns * sqrt(525600)',
  },
  {
    name: 'vol_slow_ann',
    unit: '1/sqrt(yr)',
    group: 'market',
    neutral: P.defaultAnnualVol,
    meaning: 'realised vol: std of 24 1 h log returns * sqrt(8760)',
  },
  {
    name: 'sigma_h',
    unit: 'fraction',
    group: 'market',
    neutral: DEFAULT_SIGMA_H,
    meaning:
      'std of the log move over the horizon (60 min): fast 1 m std * sqrt(60), else slow, else default',
  },
  {
    name: 'vol_ratio',
    unit: 'ratio',
    group: 'market',
    neutral: 1,
    meaning: 'vol_fast_ann / vol_slow_ann, in [0, 10]',
  },
  { name: 'atr_pct', unit: '%', group: 'market', neutral: 0, meaning: 'ATR(14) of 5 m candles / last close' },
  {
    name: 'bb_bandwidth',
    unit: 'fraction',
    group: 'market',
    neutral: 0,
    meaning: 'Bollinger(20, 2) bandwidth of 5 m closes: (upper - lower) / middle',
  },
  {
    name: 'rsi_signed',
    unit: '[-1,1]',
    group: 'market',
    neutral: 0,
    meaning: '(RSI(14) of 5 m closes - 50) / 50, signed by position',
  },
  {
    name: 'ret_1h_signed',
    unit: 'ln',
    group: 'market',
    neutral: 0,
    meaning:
      'log return of the mark since the close of the last 1 m candle that ended by T - 60 min, signed by position',
  },
  {
    name: 'trade_imbalance_signed',
    unit: '[-1,1]',
    group: 'market',
    neutral: 0,
    meaning: '(buy - sell aggressor USD volume) / total, fast window, signed by position',
  },
  {
    name: 'volume_surge',
    unit: 'ratio',
    group: 'market',
    neutral: 1,
    meaning: 'volume per hour fast window / slow window, in [0, 20]',
  },
  { name: 'spread_bps', unit: 'bps', group: 'market', neutral: 0, meaning: '(ask - bid) / mid, last book' },
  {
    name: 'funding_pay',
    unit: 'fraction/settlement',
    group: 'market',
    neutral: 0,
    meaning: 'last funding rate signed by position: positive = the account pays',
  },
  {
    name: 'mark_age_min',
    unit: 'min',
    group: 'market',
    neutral: 0,
    meaning: 'minutes since the last mark of a held instrument (oldest), capped at 60',
  },
  // missing-input flags (1 = the neutral value above was used)
  {
    name: 'fills_missing',
    unit: 'bool',
    group: 'flag',
    neutral: 0,
    meaning: 'no own fill within 3 fast windows (3 h): taker_share is neutral',
  },
  {
    name: 'topup_never',
    unit: 'bool',
    group: 'flag',
    neutral: 0,
    meaning: 'no deposit seen: since_topup_h is neutral',
  },
  {
    name: 'equity_nonpositive',
    unit: 'bool',
    group: 'flag',
    neutral: 0,
    meaning: 'equity <= 0: ratios to equity use the 1 USD floor, leverage and shares are at their caps',
  },
  {
    name: 'vol_missing',
    unit: 'bool',
    group: 'flag',
    neutral: 0,
    meaning:
      'a held instrument lacks 60 1 m returns or a mark 60 min back: vol_fast_ann / ret_1h use neutral, sigma_h falls back',
  },
  {
    name: 'vol_slow_missing',
    unit: 'bool',
    group: 'flag',
    neutral: 0,
    meaning: 'a held instrument lacks 24 1 h returns: vol_slow_ann neutral, vol_ratio neutral',
  },
  {
    name: 'indicators_missing',
    unit: 'bool',
    group: 'flag',
    neutral: 0,
    meaning: 'a held instrument lacks enough 5 m candles for ATR / Bollinger / RSI',
  },
  {
    name: 'trades_missing',
    unit: 'bool',
    group: 'flag',
    neutral: 0,
    meaning: 'no public trade within 3 h on a held instrument: imbalance / surge neutral',
  },
  {
    name: 'book_missing',
    unit: 'bool',
    group: 'flag',
    neutral: 0,
    meaning: 'no book within the last hour on a held instrument: spread neutral, slippage over the others',
  },
] as const satisfies readonly FeatureDef[];
