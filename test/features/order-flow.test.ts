import { describe, expect, it } from 'vitest';
import {
  cancel,
  DAY,
  deposit,
  feed,
  fill,
  funding,
  HOUR,
  instrument,
  liquidation,
  longObserved,
  MIN,
  mark,
  order,
  perDayNorm,
  perHourNorm,
  row,
  T0,
  withdrawal,
} from './builders.js';

/** Float32 storage keeps ~7 significant digits. */
const near = (actual: number, expected: number, rel = 2e-6) =>
  expect(Math.abs(actual - expected)).toBeLessThanOrEqual(rel * Math.max(1, Math.abs(expected)));

describe('order-flow rates (decayed, per hour)', () => {
  it('counts orders, cancels and fills at the snapshot instant as per-hour rates', () => {
    const p = feed([
      ...longObserved(),
      mark(T0, 100),
      deposit(T0, 'a', 1000),
      order(T0, 'a', 'o1'),
      order(T0, 'a', 'o2'),
      order(T0, 'a', 'o3'),
      cancel(T0, 'a', 'o1'),
      cancel(T0, 'a', 'o2'),
      fill(T0, 'a', 'buy', 1, 100),
    ]);
    const r = row(p, 'a', T0);
    near(r.order_rate_log1p, Math.log(4));
    near(r.cancel_rate_log1p, Math.log(3));
    near(r.fill_rate_log1p, Math.log(2));
    near(r.cancel_fill_log_ratio, Math.log(3 / 2));
  });

  it('weighs an event one time constant old by 1/e and forgets it over hours', () => {
    const p = feed([...longObserved(), mark(T0, 100), order(T0, 'a', 'o1'), mark(T0 + HOUR, 100)]);
    near(row(p, 'a', T0 + HOUR).order_rate_log1p, Math.log1p(Math.exp(-1)));
    expect(row(p, 'a', T0 + 10 * HOUR).order_rate_log1p).toBeLessThan(1e-4);
  });

  it('divides by the observed part of the window early in a history (rates, not counts)', () => {
    const start = [instrument(T0), mark(T0, 100)];
    const p = feed([...start, order(T0 + 30 * MIN, 'a', 'o1')]);
    near(row(p, 'a', T0 + 30 * MIN).order_rate_log1p, Math.log1p(perHourNorm(30 * MIN)));
    // under the 15 min floor the floor applies
    const q = feed([...start, order(T0 + 5 * MIN, 'a', 'o1')]);
    near(row(q, 'a', T0 + 5 * MIN).order_rate_log1p, Math.log1p(perHourNorm(15 * MIN)));
    expect(row(q, 'a', T0 + 5 * MIN).flow_coverage).toBeCloseTo(1 - Math.exp(-5 / 60), 6);
  });

  it('gives the same rate for the same behaviour in a short and a long history', () => {
    const behaviour = (t: number) => [order(t, 'a', 'x'), order(t + 10 * MIN, 'a', 'y')];
    const short = feed([instrument(T0 - 2 * HOUR), ...behaviour(T0)]);
    const long = feed([instrument(T0 - 20 * DAY), ...behaviour(T0)]);
    const a = row(short, 'a', T0 + 20 * MIN).order_rate_log1p;
    const b = row(long, 'a', T0 + 20 * MIN).order_rate_log1p;
    expect(Math.abs(a - b) / b).toBeLessThan(0.16); // 1 - exp(-2) of the window observed vs all of it
    expect(a).toBeGreaterThan(b);
  });
});

describe('fills: taker share, notional, turnover', () => {
  const base = [...longObserved(), mark(T0, 100), deposit(T0, 'a', 1000)];

  it('taker share is the taker part of the fill notional; neutral 0.5 and flagged without fills', () => {
    const p = feed([...base, fill(T0, 'a', 'buy', 3, 100, 'taker'), fill(T0, 'a', 'sell', 1, 100, 'maker')]);
    const r = row(p, 'a', T0);
    near(r.taker_share, 0.75);
    expect(r.fills_missing).toBe(0);
    near(r.fill_notional_log1p, Math.log1p(400));
    // equity: 1000 cash, long 2 at 100, mark 100 -> 1000
    near(r.turnover_log1p, Math.log1p(400 / 1000));
    const later = row(p, 'a', T0 + 4 * HOUR);
    expect(later.fills_missing).toBe(1);
    expect(later.taker_share).toBe(0.5);
    const none = row(feed(base), 'a', T0);
    expect(none.fills_missing).toBe(1);
    expect(none.taker_share).toBe(0.5);
  });
});

describe('doubling down vs cutting a losing position', () => {
  const open = [...longObserved(), mark(T0, 100), deposit(T0, 'a', 1000), fill(T0, 'a', 'buy', 2, 100)];

  it('adding to a losing long counts as doubling down, relative to equity', () => {
    const p = feed([...open, mark(T0 + 1, 90), fill(T0 + 2, 'a', 'buy', 1, 90)]);
    const r = row(p, 'a', T0 + 2);
    // equity = 1000 + (90 - 100) * 2 + (90 - 90) * 1 = 980
    near(r.double_down_log1p, Math.log1p(90 / 980));
    expect(r.cut_loss_log1p).toBe(0);
  });

  it('reducing a losing long counts as cutting it (only the closed part)', () => {
    const p = feed([...open, mark(T0 + 1, 90), fill(T0 + 2, 'a', 'sell', 3, 90)]);
    const r = row(p, 'a', T0 + 2);
    // closes 2 (cut 180 USD), opens a short of 1; equity = 1000 - 20 = 980
    near(r.cut_loss_log1p, Math.log1p(180 / 980));
    expect(r.double_down_log1p).toBe(0);
  });

  it('adding to a winning position is neither', () => {
    const p = feed([...open, mark(T0 + 1, 110), fill(T0 + 2, 'a', 'buy', 1, 110)]);
    const r = row(p, 'a', T0 + 2);
    expect(r.double_down_log1p).toBe(0);
    expect(r.cut_loss_log1p).toBe(0);
  });
});

describe('leverage change, deposits, withdrawals, top-ups', () => {
  it('sums the leverage change of own fills and transfers per hour', () => {
    const p = feed([
      ...longObserved(),
      mark(T0, 100),
      deposit(T0, 'a', 1000), // leverage 0 -> 0
      fill(T0, 'a', 'buy', 10, 100), // 0 -> 1
      withdrawal(T0, 'a', 500), // 1 -> 2
    ]);
    const r = row(p, 'a', T0);
    near(r.leverage_change_h, 2);
    near(r.leverage, 2);
    // a mark move changes leverage but is not an own action
    const q = feed([...longObserved(), mark(T0, 100), deposit(T0, 'a', 1000), fill(T0, 'a', 'buy', 10, 100)]);
    q.apply(mark(T0 + 1, 50));
    near(row(q, 'a', T0 + 1).leverage_change_h, 1, 1e-5);
  });

  it('reads the leverage before an own action at the cash funding left', () => {
    const p = feed([
      ...longObserved(),
      mark(T0, 100),
      deposit(T0, 'a', 1000),
      fill(T0, 'a', 'buy', 10, 100), // leverage 0 -> 1
      funding(T0, 0.01), // the long pays 10 * 100 * 0.01 = 10: equity 990, leverage 1000 / 990
      deposit(T0, 'a', 10), // equity 1000: leverage back to 1
    ]);
    near(row(p, 'a', T0).leverage_change_h, 1 + (1 - 1000 / 990));
  });

  it('reports deposits and withdrawals per day relative to equity and the hours since the last top-up', () => {
    const p = feed([
      ...longObserved(),
      mark(T0, 100),
      deposit(T0, 'a', 1000),
      withdrawal(T0 + HOUR, 'a', 200),
    ]);
    const t = T0 + 3 * HOUR;
    const r = row(p, 'a', t);
    const norm = perDayNorm(30 * DAY + 3 * HOUR);
    near(r.deposit_log1p_d, Math.log1p((1000 * Math.exp(-3 / 24) * norm) / 800));
    near(r.withdrawal_log1p_d, Math.log1p((200 * Math.exp(-2 / 24) * norm) / 800));
    near(r.since_topup_h, 3);
    expect(r.topup_never).toBe(0);
    expect(row(p, 'a', T0 + 30 * HOUR).since_topup_h).toBe(24);
    const never = row(feed([...longObserved(), order(T0, 'b', 'o')]), 'b', T0);
    expect(never.topup_never).toBe(1);
    expect(never.since_topup_h).toBe(24);
  });
});

describe('drawdown, liquidations', () => {
  it('measures equity against the peak sampled after the last own margin event', () => {
    const p = feed([...longObserved(), mark(T0, 100), deposit(T0, 'a', 1000), fill(T0, 'a', 'buy', 10, 100)]);
    p.apply(mark(T0 + MIN, 95)); // equity 950
    near(row(p, 'a', T0 + MIN).drawdown, 0.05);
    p.apply(mark(T0 + 2 * MIN, 105)); // above the sampled peak: no drawdown
    expect(row(p, 'a', T0 + 2 * MIN).drawdown).toBe(0);
    // a day later with no own event the last sample is still the reference
    p.apply(mark(T0 + DAY, 90));
    near(row(p, 'a', T0 + DAY).drawdown, 0.1);
  });

  it('turns past liquidations into a decayed daily rate and a recency', () => {
    const p = feed([
      ...longObserved(),
      mark(T0, 100),
      deposit(T0, 'a', 100),
      fill(T0, 'a', 'buy', 10, 100),
      mark(T0 + 1, 91),
      liquidation(T0 + 1, 'a', 'sell', 10, 91),
      mark(T0 + DAY + 1, 91),
    ]);
    const r = row(p, 'a', T0 + DAY + 1);
    near(r.liq_recency, Math.exp(-1));
    near(r.liq_rate_log1p_d, Math.log1p(Math.exp(-1) * perDayNorm(31 * DAY + 1)));
    const clean = row(feed([...longObserved(), deposit(T0, 'b', 10)]), 'b', T0);
    expect(clean.liq_recency).toBe(0);
    expect(clean.liq_rate_log1p_d).toBe(0);
  });
});
