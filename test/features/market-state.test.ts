import { describe, expect, it } from 'vitest';
import type { CanonicalEvent } from '../../src/events/schema.js';
import { CandleSeries } from '../../src/features/candles.js';
import { CandleIndicators } from '../../src/features/indicators.js';
import {
  book,
  deposit,
  feed,
  fill,
  funding,
  HOUR,
  longObserved,
  MIN,
  mark,
  row,
  T0,
  trade,
} from './builders.js';

const near = (actual: number, expected: number, rel = 2e-6) =>
  expect(Math.abs(actual - expected)).toBeLessThanOrEqual(rel * Math.max(1, Math.abs(expected)));

const periods = { atr: 3, rsi: 3, bb: 4, bbStdDev: 2, vol: 4 };

describe('indicator wrapper (technicalindicators, streaming)', () => {
  it('is NaN until warm, then reports ATR, RSI, Bollinger bandwidth', () => {
    const ind = new CandleIndicators(periods);
    ind.push(101, 99, 100, Number.NaN);
    expect(Number.isNaN(ind.atr)).toBe(true);
    expect(Number.isNaN(ind.rsi)).toBe(true);
    // constant 2-wide range around closes alternating 99 / 101
    for (let i = 1; i < 8; i++) {
      const c = i % 2 ? 101 : 99;
      ind.push(c + 1, c - 1, c, Math.log(c / (i % 2 ? 99 : 101)));
    }
    // true range = max(high - low, |high - prev close|, |low - prev close|): 2 for the first step, then 3;
    // Wilder's average: the mean of the first 3, then atr = (atr * 2 + tr) / 3
    let atr = (2 + 3 + 3) / 3;
    for (let k = 0; k < 4; k++) atr = (atr * 2 + 3) / 3;
    near(ind.atr, atr);
    // gains and losses of 2 alternate: RSI strictly inside (0, 100)
    expect(ind.rsi).toBeGreaterThan(0);
    expect(ind.rsi).toBeLessThan(100);
    // last 4 closes 101, 99, 101, 99: mean 100, population std 1 -> (upper - lower) / middle = 4 / 100
    near(ind.bbBandwidth, 0.04);
  });

  it('realised vol: population std of the returns, and 0 (not missing) for a flat market', () => {
    const flat = new CandleIndicators(periods);
    for (let i = 0; i < 6; i++) flat.push(100, 100, 100, i === 0 ? Number.NaN : 0);
    expect(flat.returnStd).toBe(0);
    const alt = new CandleIndicators(periods);
    const r = 0.01;
    for (let i = 0; i < 6; i++) alt.push(100, 100, 100, i === 0 ? Number.NaN : i % 2 ? r : -r);
    near(alt.returnStd, r, 1e-9);
    const rising = new CandleIndicators(periods);
    for (let i = 0; i < 6; i++) rising.push(100 + i, 100 + i, 100 + i, 0.01);
    expect(rising.rsi).toBe(100);
  });
});

describe('candles with explicit gaps', () => {
  it('builds OHLC per step from marks and does not invent candles for empty steps', () => {
    const s = new CandleSeries(MIN, { ...periods, vol: 2 });
    s.onMark(T0 + 1_000, 100);
    s.onMark(T0 + 20_000, 103);
    s.onMark(T0 + 40_000, 98);
    s.onTrade(T0 + 41_000, 5);
    s.onMark(T0 + 59_000, 101);
    expect(s.last).toBeUndefined();
    s.onMark(T0 + MIN + 1, 102); // minute 1 opens: minute 0 closes
    expect(s.last).toEqual({ bucket: (T0 / MIN) | 0, open: 100, high: 103, low: 98, close: 101, volume: 5 });
    s.onMark(T0 + 4 * MIN, 110); // minutes 2 and 3 have no mark
    expect(s.closedCount).toBe(2);
    s.advanceTo(T0 + 5 * MIN - 1);
    expect(s.closedCount).toBe(2); // minute 4 has not ended yet
    s.advanceTo(T0 + 5 * MIN);
    expect(s.closedCount).toBe(3);
    expect(s.gapSteps).toBe(2);
    // returns fed: ln(102/101) (1 step), ln(110/102)/sqrt(3) (3 steps); population std of two = |a - b| / 2
    const a = Math.log(102 / 101);
    const b = Math.log(110 / 102) / Math.sqrt(3);
    near(s.indicators.returnStd, Math.abs(a - b) / 2, 1e-9);
  });
});

/** Marks once a minute for `minutes`, log returns alternating +r / -r. */
function alternatingMarks(minutes: number, r: number, start = T0): CanonicalEvent[] {
  const out: CanonicalEvent[] = [];
  let logP = Math.log(100);
  for (let m = 0; m <= minutes; m++) {
    out.push(mark(start + m * MIN, Math.exp(logP)));
    logP += m % 2 ? -r : r;
  }
  return out;
}

describe('market features of the instruments held', () => {
  const r = 0.002;
  const marks = alternatingMarks(130, r);
  const lastMarkTs = T0 + 130 * MIN;
  const positions = [
    deposit(T0, 'long', 10_000),
    fill(T0, 'long', 'buy', 1, 100),
    deposit(T0, 'short', 10_000),
    fill(T0, 'short', 'sell', 1, 100),
  ];
  const history = [...longObserved(), ...marks.slice(0, 1), ...positions, ...marks.slice(1)];

  it('realised volatility annualised with sqrt(525600) and sigma over the 60 min horizon', () => {
    const v = row(feed(history), 'long', lastMarkTs + MIN);
    expect(v.vol_missing).toBe(0);
    near(v.vol_fast_ann, r * Math.sqrt(525_600), 1e-5);
    near(v.sigma_h, r * Math.sqrt(60), 1e-5);
    expect(v.vol_slow_missing).toBe(1); // fewer than 24 hourly returns
    expect(v.vol_ratio).toBe(1);
    expect(v.indicators_missing).toBe(0); // 26 five-minute candles: enough for ATR(14), RSI(14), BB(20)
    expect(v.bb_bandwidth).toBeGreaterThan(0);
    expect(v.atr_pct).toBeGreaterThan(0);
  });

  it('flags missing volatility before an hour of marks', () => {
    const v = row(feed(history.slice(0, 30)), 'long', T0 + 30 * MIN);
    expect(v.vol_missing).toBe(1);
    expect(v.indicators_missing).toBe(1);
  });

  it('signs directional features by the position: imbalance, 1 h return, funding', () => {
    const p = feed([
      ...history,
      trade(lastMarkTs, 100, 3, 'buy'),
      trade(lastMarkTs, 100, 1, 'sell'),
      funding(lastMarkTs, 0.0001),
    ]);
    const long = row(p, 'long', lastMarkTs);
    const short = row(p, 'short', lastMarkTs);
    near(long.trade_imbalance_signed, 0.5);
    near(short.trade_imbalance_signed, -0.5);
    near(long.funding_pay, 0.0001);
    near(short.funding_pay, -0.0001);
    // mark at minute 130 (log price + 0) vs the close of minute 69, the last candle ending by 60 min before
    // (log price + r): -r for the long
    near(long.ret_1h_signed, -r, 1e-5);
    near(short.ret_1h_signed, r, 1e-5);
    expect(long.volume_surge).toBe(20); // fast rate 24x the daily baseline, capped
    expect(long.trades_missing).toBe(0);
  });

  it('market features do not scale with the venue: ten times the volume and depth change nothing but slippage', () => {
    // a venue ten times the size: every public trade and every resting book ten times larger; the account's
    // own position stays 1 contract, so only its expected liquidation slippage falls
    const market = (k: number) => [
      ...history,
      trade(lastMarkTs - 30 * MIN, 100, 3 * k, 'buy'),
      trade(lastMarkTs, 100, 1 * k, 'sell'),
      book(lastMarkTs, 99.9, 100.1, 100 * k, 40 * k),
    ];
    const small = row(feed(market(1)), 'long', lastMarkTs);
    const large = row(feed(market(10)), 'long', lastMarkTs);
    expect(small.trades_missing).toBe(0);
    expect(small.book_missing).toBe(0);
    expect(large.liq_slippage_bps).toBeLessThan(small.liq_slippage_bps);
    for (const name of Object.keys(small) as (keyof typeof small)[]) {
      if (name === 'liq_slippage_bps') continue;
      expect({ name, value: large[name] }).toEqual({ name, value: small[name] });
    }
  });

  it('reports a trend as a signed 1 h return', () => {
    const trend: CanonicalEvent[] = [];
    for (let m = 0; m <= 70; m++) trend.push(mark(T0 + m * MIN, 100 * Math.exp(0.001 * m)));
    const p = feed([...longObserved(), trend[0]!, ...positions, ...trend.slice(1)]);
    // reference: the candle of minute 9, the last that ended at or before t - 60 min; its close is the mark
    // at minute 9
    const t = T0 + 70 * MIN;
    near(row(p, 'long', t).ret_1h_signed, 0.001 * (70 - 9), 1e-5);
    near(row(p, 'short', t).ret_1h_signed, -0.001 * (70 - 9), 1e-5);
  });

  it('mark age, and book/trade staleness flags', () => {
    const p = feed([...history, book(lastMarkTs, 99, 101, 10, 10), trade(lastMarkTs, 100, 1, 'buy')]);
    const soon = row(p, 'long', lastMarkTs + 30 * MIN);
    near(soon.mark_age_min, 30);
    expect(soon.book_missing).toBe(0);
    const later = row(p, 'long', lastMarkTs + 4 * HOUR);
    expect(later.mark_age_min).toBe(60);
    expect(later.book_missing).toBe(1);
    expect(later.trades_missing).toBe(1);
    expect(later.trade_imbalance_signed).toBe(0);
  });
});
