/**
 * A history posted to `POST /v1/score` that the replay refuses: the error names the event by its index in
 * the posted list (not in time order).
 */
import { describe, expect, it } from 'vitest';
import { ServiceError } from '../../src/service/errors.js';
import { featurizeHistory } from '../../src/service/evaluator/featurize.js';
import { deposit, fill, instrument, mark, T0 } from './events-fixtures.js';

async function refusal(events: unknown[]): Promise<ServiceError> {
  try {
    await featurizeHistory(events, ['a'], undefined);
  } catch (e) {
    if (e instanceof ServiceError) return e;
    throw e;
  }
  throw new Error('the history was accepted');
}

describe('history scoring refusals', () => {
  it('name the refused event by its index', async () => {
    const e = await refusal([
      instrument(),
      mark(100, T0 + 1),
      deposit('a', 100, T0 + 2),
      fill('a', 'buy', 1, 100, T0 + 3, 'ETH-PERP'), // no ETH-PERP instrument
    ]);
    expect(e.code).toBe('INVALID_EVENT');
    expect(e.status).toBe(400);
    expect(e.detail).toEqual({ field: 'history.events.3', index: 3 });
    expect(e.message).toMatch(/^history\.events\.3: fill at \d+: symbol: undeclared instrument "ETH-PERP"/);
  });

  it('by its index as posted, though the replay runs in time order', async () => {
    const e = await refusal([
      deposit('a', 100, T0 + 2),
      fill('a', 'buy', 1, 100, T0 + 3, 'ETH-PERP'),
      instrument(),
      mark(100, T0 + 1),
    ]);
    expect(e.detail).toEqual({ field: 'history.events.1', index: 1 });
  });
});
