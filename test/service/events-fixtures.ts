/**
 * Small hand-made canonical events for the service tests.
 */
import type { CanonicalEventInput } from '../../src/events/schema.js';

export const T0 = 1_700_000_000_000; // ms

export function instrument(symbol = 'BTC-PERP', ts = T0): CanonicalEventInput {
  return {
    type: 'instrument',
    ts,
    symbol,
    base: symbol.split('-')[0] ?? symbol,
    tiers: [
      { maxNotional: 250_000, imr: 0.02, mmr: 0.01 },
      { maxNotional: null, imr: 0.05, mmr: 0.025 },
    ],
  };
}

export const mark = (price: number, ts: number, symbol = 'BTC-PERP', id?: string): CanonicalEventInput => ({
  type: 'mark',
  ts,
  symbol,
  price,
  ...(id ? { id } : {}),
});

export const deposit = (account: string, amount: number, ts: number): CanonicalEventInput => ({
  type: 'deposit',
  ts,
  account,
  amount,
});

export const fill = (
  account: string,
  side: 'buy' | 'sell',
  qty: number,
  price: number,
  ts: number,
  symbol = 'BTC-PERP',
): CanonicalEventInput => ({
  type: 'fill',
  ts,
  account,
  symbol,
  side,
  qty,
  price,
  fee: 0,
  liquidity: 'taker',
});

export const ndjson = (events: readonly unknown[]): string =>
  `${events.map((e) => JSON.stringify(e)).join('\n')}\n`;
