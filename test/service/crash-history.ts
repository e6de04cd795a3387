/**
 * A small deterministic crash history for the service's multi-process test: accounts from 1.2x to 20x
 * leverage (longs, and a few shorts), and a minute-by-minute sell-off from 100 to 87 with a book at each mark.
 */
import type { CanonicalEventInput } from '../../src/events/schema.js';
import { deposit, fill, instrument, mark, T0 } from './events-fixtures.js';

const MIN = 60_000; // ms
export const CRASH_PATH = [100, 99, 97, 95, 93, 92, 90, 91, 89, 88, 87]; // USD

export function crashHistory(accounts = 40): CanonicalEventInput[] {
  const events: CanonicalEventInput[] = [instrument(), mark(100, T0 + 1)];
  for (let i = 0; i < accounts; i++) {
    const id = `acct-${String(i).padStart(2, '0')}`;
    events.push(deposit(id, 100 + 40 * i, T0 + 2));
    events.push(fill(id, i % 7 === 3 ? 'sell' : 'buy', 20, 100, T0 + 3));
  }
  CRASH_PATH.forEach((p, k) => {
    const ts = T0 + (k + 1) * MIN;
    events.push({
      type: 'book',
      ts,
      symbol: 'BTC-PERP',
      bid: p - 0.05,
      ask: p + 0.05,
      bidDepth: 400 - 25 * k,
      askDepth: 400,
    });
    events.push(mark(p, ts + 1, 'BTC-PERP', `m-${k}`));
  });
  return events;
}
