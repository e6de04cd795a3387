/**
 * Saving a pipeline's state is for a pipeline built for snapshots: every other pipeline (backtests,
 * training, featurize, scoring history) refuses with a clear error. The candles the indicators keep (at
 * most 2 * REBASE_CANDLES per series, test/features/indicator-rebase.test.ts) are the same either way.
 */
import { describe, expect, it } from 'vitest';
import { CandleIndicators } from '../../src/features/indicators.js';
import { FeaturePipeline } from '../../src/features/pipeline.js';
import { feed } from './builders.js';
import { syntheticHistory } from './synthetic-history.js';

const history = syntheticHistory({ seed: 3, accounts: 6, minutes: 300 });

const periods = { atr: 3, rsi: 3, bb: 4, bbStdDev: 2, vol: 4 };

describe('the candle record for snapshots', () => {
  it("is off by default: saveState and the indicators' inputs refuse with a clear error", () => {
    const p = feed(history);
    expect(p.recordsForSnapshots).toBe(false);
    expect(() => p.saveState()).toThrow(/recordForSnapshots/);
    const ind = new CandleIndicators(periods);
    ind.push(101, 99, 100, Number.NaN);
    expect(() => ind.fedInputs()).toThrow(/not recorded/);
  });

  it('is kept when asked: the state saves, and a restore of it records too', async () => {
    const p = feed(history, { recordForSnapshots: true });
    expect(p.recordsForSnapshots).toBe(true);
    const s = p.saveState();
    const candles = s.features.markets.reduce((n, m) => n + m.m1.indicatorInputs.length, 0);
    expect(candles).toBeGreaterThan(0);
    const r = await FeaturePipeline.restore(s);
    expect(r.recordsForSnapshots).toBe(true);
    expect(r.saveState().features.markets[0]!.m1.indicatorInputs).toEqual(
      s.features.markets[0]!.m1.indicatorInputs,
    );
    const ind = new CandleIndicators(periods, true);
    ind.push(101, 99, 100, Number.NaN);
    expect(ind.fedInputs()).toEqual(new Float64Array([101, 99, 100, Number.NaN]));
  });
});
