/**
 * Small builders for margin-core tests: the spec's BTC instrument and event constructors with defaults.
 */
import type { CanonicalEvent, EventOf } from '../../src/events/schema.js';
import { MarginBook } from '../../src/margin/index.js';

export const BTC_TIERS = [
  { maxNotional: 250_000, imr: 0.02, mmr: 0.01 },
  { maxNotional: 1_000_000, imr: 0.05, mmr: 0.025 },
  { maxNotional: null, imr: 0.1, mmr: 0.05 },
];

export function instrument(
  symbol = 'BTC-PERP',
  over: Partial<EventOf<'instrument'>> = {},
): EventOf<'instrument'> {
  return {
    type: 'instrument',
    ts: 0,
    symbol,
    base: symbol.split('-')[0]!,
    contractSize: 1,
    tiers: BTC_TIERS,
    liquidationFeeRate: 0.005,
    ...over,
  };
}

export const mark = (price: number, symbol = 'BTC-PERP', ts = 1): CanonicalEvent => ({
  type: 'mark',
  ts,
  symbol,
  price,
});

export const deposit = (account: string, amount: number, ts = 1): CanonicalEvent => ({
  type: 'deposit',
  ts,
  account,
  amount,
});

export function fill(
  account: string,
  side: 'buy' | 'sell',
  qty: number,
  price: number,
  fee = 0,
  symbol = 'BTC-PERP',
  ts = 2,
): CanonicalEvent {
  return { type: 'fill', ts, account, symbol, side, qty, price, fee, liquidity: 'taker' };
}

export const funding = (rate: number, symbol = 'BTC-PERP', ts = 3): CanonicalEvent => ({
  type: 'funding',
  ts,
  symbol,
  rate,
});

/**
 * The pd thresholds the decision tests were worked out with (no margin-ratio gate), so that they test the
 * tiers' mechanics whatever the shipped defaults are.
 */
export const UNGATED_TIERS = {
  pdWatch: 0.05,
  pdReduce: 0.2,
  pdHysteresis: 0.03,
  reduceGateMarginRatio: 0,
} as const;

/** A margin book with `events` applied. */
export function book(events: CanonicalEvent[]): MarginBook {
  const b = new MarginBook();
  for (const e of events) b.apply(e);
  return b;
}

/**
 * Account `a` long 10 BTC @ 10,000 (100,000 USD of notional) on `cash` USD: on 2,500, 40x at equity / MM 2.5, short of
 * a 3-sigma hour; on 20,000, 5x, far above MM.
 */
export function longBtc(cash: number): MarginBook {
  return book([instrument('BTC-PERP'), mark(10_000), deposit('a', cash), fill('a', 'buy', 10, 10_000)]);
}
