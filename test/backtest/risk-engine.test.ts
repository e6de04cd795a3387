import { describe, expect, it } from 'vitest';
import { createRiskEngine, type PdSource } from '../../src/backtest/risk-engine.js';
import type { CanonicalEvent } from '../../src/events/schema.js';
import { MarginBook, resolvePolicyConfig } from '../../src/margin/index.js';
import { deposit, fill, instrument, mark } from '../margin/fixtures.js';

const MIN = 60_000; // ms

/**
 * The margin-ratio rule's signal, look by look, for one account long 1 BTC from 10,000 USD on 1,000 USD of
 * collateral (MM 1% of notional): equity / MM = (mark - 9,000) / (0.01 mark).
 */
async function signals(source: PdSource, marks: number[]): Promise<number[]> {
  const book = new MarginBook();
  const engine = createRiskEngine(source, resolvePolicyConfig({ reduceGateMarginRatio: 0 }), (o) =>
    seen.push(o.accounts.includes('a') ? (o.pd[o.accounts.indexOf('a')] as number) : Number.NaN),
  );
  const seen: number[] = [];
  const feed = (ev: CanonicalEvent) => {
    book.apply(ev);
    engine.pipeline.apply(ev);
  };
  feed(instrument());
  feed(mark(10_000, 'BTC-PERP', 0));
  feed(deposit('a', 1_000, 0));
  feed(fill('a', 'buy', 1, 10_000, 0, 'BTC-PERP', 0));
  for (const [i, price] of marks.entries()) {
    const ts = (i + 1) * MIN;
    feed(mark(price, 'BTC-PERP', ts));
    await engine.engine({
      ts,
      minute: i + 1,
      book,
      market: [
        {
          symbol: 'BTC-PERP',
          mark: price,
          bid: price - 1,
          ask: price + 1,
          bidDepth: 0,
          askDepth: 0,
          sigma1h: 0.01,
        },
      ],
    });
  }
  return seen;
}

// equity / MM at each mark: 10, 2.0, 4.5, 7.1, 4.5, 2.0
const MARKS = [10_000, 9_184, 9_424, 9_690, 9_424, 9_184];

describe('backtest risk engine: the margin-ratio rule', () => {
  it('without an exit level, disarms the moment equity / MM is back above its threshold', async () => {
    expect(await signals({ kind: 'margin-ratio', threshold: 3 }, MARKS)).toEqual([0, 1, 0, 0, 0, 1]);
  });

  it('with an exit level, stays armed until equity / MM reaches it, and re-arms only below the threshold', async () => {
    expect(await signals({ kind: 'margin-ratio', threshold: 3, exitThreshold: 6 }, MARKS)).toEqual([
      0, 1, 1, 0, 0, 1,
    ]);
    // an exit level equal to the threshold is the plain rule
    expect(await signals({ kind: 'margin-ratio', threshold: 3, exitThreshold: 3 }, MARKS)).toEqual([
      0, 1, 0, 0, 0, 1,
    ]);
  });
});
