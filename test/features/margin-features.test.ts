import { describe, expect, it } from 'vitest';
import { F, FEATURE_NEUTRAL, FEATURE_PARAMS } from '../../src/features/schema.js';
import { book, deposit, feed, fill, instrument, longObserved, mark, order, row, T0 } from './builders.js';

const near = (actual: number, expected: number, rel = 2e-6) =>
  expect(Math.abs(actual - expected)).toBeLessThanOrEqual(rel * Math.max(1, Math.abs(expected)));

const DEFAULT_SIGMA_H = FEATURE_PARAMS.defaultAnnualVol * Math.sqrt(60 / 525_600);

describe('margin features from the margin core', () => {
  // cash 100, long 10 at 100, mark 100, mmr 1%: equity 100, MM 10, notional 1000
  const levered = [...longObserved(), mark(T0, 100), deposit(T0, 'a', 100), fill(T0, 'a', 'buy', 10, 100)];

  it('margin ratio (log), leverage, free-collateral share, uPnL share', () => {
    const r = row(feed(levered), 'a', T0);
    expect(r.has_position).toBe(1);
    expect(r.position_count).toBe(1);
    near(r.margin_ratio_log, Math.log(100 / 10));
    near(r.leverage, 10);
    // IM = 1000 * 2% = 20, free = 80
    near(r.free_collateral_share, 0.8);
    expect(r.upnl_notional).toBe(0);
    near(r.equity_log, Math.log1p(100));
    const down = feed([...levered, mark(T0 + 1, 95)]);
    // equity 50, notional 950
    near(row(down, 'a', T0 + 1).upnl_notional, -50 / 950);
  });

  it('distance to liquidation in percent and in horizon sigmas', () => {
    // liquidation where 100 + (x - 100) * 10 = 10 * x * 0.01 -> x = 900 / 9.9
    const liq = 900 / 9.9;
    const r = row(feed(levered), 'a', T0);
    near(r.liq_dist_pct, 100 * (1 - liq / 100));
    // no volatility measured yet: the documented default sigma, flagged
    expect(r.vol_missing).toBe(1);
    near(r.sigma_h, DEFAULT_SIGMA_H);
    near(r.liq_dist_sigma, Math.log(100 / liq) / DEFAULT_SIGMA_H, 1e-5);
    // cushion above MM in sigmas of a common move: (100 - 10) / (1000 * sigma)
    near(r.buffer_sigma, 90 / (1000 * DEFAULT_SIGMA_H), 1e-5);
  });

  it('an account already below maintenance is at distance 0', () => {
    const r = row(feed([...levered, mark(T0 + 1, 90)]), 'a', T0 + 1);
    expect(r.liq_dist_pct).toBe(0);
    expect(r.liq_dist_sigma).toBe(0);
    expect(r.buffer_sigma).toBeLessThan(0);
  });

  it('expected liquidation slippage: half spread plus 50 bps per unit of size over the closing side depth', () => {
    const withBook = [...levered, book(T0, 99.9, 100.1, 100, 40)];
    const r = row(feed(withBook), 'a', T0);
    // spread 0.2 / 100 = 20 bps; long closes into bids: 10 + 50 * 10 / 100
    near(r.liq_slippage_bps, 15);
    expect(r.book_missing).toBe(0);
    near(r.spread_bps, 20);
    // a short closes into the asks
    const short = [...longObserved(), mark(T0, 100), deposit(T0, 'b', 100), fill(T0, 'b', 'sell', 10, 100)];
    near(
      row(feed([...short, book(T0, 99.9, 100.1, 100, 40)]), 'b', T0).liq_slippage_bps,
      10 + (50 * 10) / 40,
    );
    // no book: neutral 0 and flagged
    const none = row(feed(levered), 'a', T0);
    expect(none.liq_slippage_bps).toBe(0);
    expect(none.book_missing).toBe(1);
  });

  it('concentration is the largest position share of the gross notional', () => {
    const p = feed([
      instrument(T0 - 40 * 86_400_000, 'BTC-PERP'),
      instrument(T0 - 40 * 86_400_000, 'ETH-PERP'),
      mark(T0, 100, 'BTC-PERP'),
      mark(T0, 10, 'ETH-PERP'),
      deposit(T0, 'a', 10_000),
      fill(T0, 'a', 'buy', 30, 100, 'taker', 'BTC-PERP'),
      fill(T0, 'a', 'sell', 100, 10, 'taker', 'ETH-PERP'),
    ]);
    const r = row(p, 'a', T0);
    near(r.concentration, 3000 / 4000);
    expect(r.position_count).toBe(2);
    near(r.leverage, 0.4);
  });

  it('an account without a position gets the neutral margin and market values', () => {
    const v = feed([...longObserved(), mark(T0, 100), deposit(T0, 'a', 100), order(T0, 'a', 'o')]).vector(
      'a',
      T0,
    );
    for (const name of [
      'has_position',
      'margin_ratio_log',
      'leverage',
      'liq_dist_pct',
      'liq_dist_sigma',
    ] as const)
      expect(v[F[name]]).toBe(FEATURE_NEUTRAL[F[name]]);
    expect(v[F.free_collateral_share]).toBe(1);
    for (let i = F.vol_fast_ann; i <= F.mark_age_min; i++) expect(v[i]).toBe(FEATURE_NEUTRAL[i]);
  });

  it('flags non-positive equity and caps leverage', () => {
    const r = row(feed([...levered, mark(T0 + 1, 85)]), 'a', T0 + 1);
    expect(r.equity_nonpositive).toBe(1);
    expect(r.leverage).toBe(200);
    expect(r.free_collateral_share).toBe(-1);
    near(r.margin_ratio_log, Math.log(0.01));
    expect(r.drawdown).toBe(1);
  });
});
