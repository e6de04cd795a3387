/**
 * Small builders of canonical events for hand-made feature histories (test helper). All defaults are
 * spelled out so a test reads as the history it describes.
 */
import type { CanonicalEvent } from '../../src/events/schema.js';
import { FeaturePipeline, type FeaturePipelineOptions } from '../../src/features/pipeline.js';
import { F, type FeatureName } from '../../src/features/schema.js';

export const MIN = 60_000;
export const HOUR = 3_600_000;
export const DAY = 86_400_000;
/** an hour-aligned epoch ms (2023-11-14T22:00:00Z) */
export const T0 = 1_699_999_200_000;
export const SYM = 'BTC-PERP';

export function instrument(ts: number, symbol = SYM, mmr = 0.01, imr = 0.02): CanonicalEvent {
  return {
    type: 'instrument',
    ts,
    symbol,
    base: symbol.split('-')[0]!,
    contractSize: 1,
    tiers: [{ maxNotional: null, imr, mmr }],
    liquidationFeeRate: 0.005,
  };
}
export const mark = (ts: number, price: number, symbol = SYM): CanonicalEvent => ({
  type: 'mark',
  ts,
  symbol,
  price,
});
export const trade = (
  ts: number,
  price: number,
  qty: number,
  aggressor: 'buy' | 'sell',
  symbol = SYM,
): CanonicalEvent => ({ type: 'trade', ts, symbol, price, qty, aggressor });
export const book = (
  ts: number,
  bid: number,
  ask: number,
  bidDepth: number,
  askDepth: number,
  symbol = SYM,
): CanonicalEvent => ({ type: 'book', ts, symbol, bid, ask, bidDepth, askDepth });
export const funding = (ts: number, rate: number, symbol = SYM): CanonicalEvent => ({
  type: 'funding',
  ts,
  symbol,
  rate,
});
export const deposit = (ts: number, account: string, amount: number): CanonicalEvent => ({
  type: 'deposit',
  ts,
  account,
  amount,
});
export const withdrawal = (ts: number, account: string, amount: number): CanonicalEvent => ({
  type: 'withdrawal',
  ts,
  account,
  amount,
});
export const order = (ts: number, account: string, orderId: string, symbol = SYM): CanonicalEvent => ({
  type: 'order',
  ts,
  account,
  orderId,
  symbol,
  side: 'buy',
  qty: 1,
  price: null,
  reduceOnly: false,
});
export const cancel = (ts: number, account: string, orderId: string): CanonicalEvent => ({
  type: 'cancel',
  ts,
  account,
  orderId,
});
export const fill = (
  ts: number,
  account: string,
  side: 'buy' | 'sell',
  qty: number,
  price: number,
  liquidity: 'maker' | 'taker' = 'taker',
  symbol = SYM,
): CanonicalEvent => ({ type: 'fill', ts, account, symbol, side, qty, price, fee: 0, liquidity });
export const liquidation = (
  ts: number,
  account: string,
  side: 'buy' | 'sell',
  qty: number,
  price: number,
  symbol = SYM,
): CanonicalEvent => ({ type: 'liquidation', ts, account, symbol, side, qty, price, fee: 0 });

/** A pipeline fed `events` in order. */
export function feed(events: CanonicalEvent[], opts: FeaturePipelineOptions = {}): FeaturePipeline {
  const p = new FeaturePipeline(opts);
  for (const ev of events) p.apply(ev);
  return p;
}

/** One account's feature values at `ts`, by name. */
export function row(p: FeaturePipeline, account: string, ts: number): Record<FeatureName, number> {
  const v = p.vector(account, ts);
  return Object.fromEntries(Object.entries(F).map(([name, i]) => [name, v[i]!])) as Record<
    FeatureName,
    number
  >;
}

/**
 * A history whose observation started long before T0 (an instrument declared 30 days earlier), so the
 * warm-up normalisation of the rates is 1 to float precision for the fast window.
 */
export function longObserved(symbol = SYM): CanonicalEvent[] {
  return [instrument(T0 - 30 * DAY, symbol)];
}

/** The per-hour multiplier of the fast window after `observedMs` (the documented warm-up formula). */
export function perHourNorm(observedMs: number): number {
  const obs = Math.max(observedMs, 15 * MIN);
  return 1 / (1 - Math.exp(-obs / HOUR));
}

/** The per-day multiplier of the slow window after `observedMs`. */
export function perDayNorm(observedMs: number): number {
  const obs = Math.max(observedMs, 15 * MIN);
  return 1 / (1 - Math.exp(-obs / DAY));
}
