/**
 * Every backtest run's books are checked before its row is reported (assertRunConsistent, called by
 * runBacktest for each run): a run that does not balance stops the backtest with the figures that disagree.
 */
import { describe, expect, it } from 'vitest';
import { assertRunConsistent, BacktestIntegrityError } from '../../src/backtest/conservation.js';

const balanced = {
  measures: { bankruptcyDeficits: 1200.25, badDebt: 1500.25, adlCost: 300, liquidations: 7, adlEvents: 2 },
  conservation: { held: 5_000_000.000001, contributed: 5_000_000, residual: 0.000001, scale: 5_000_000 },
  summary: { badDebt: 1200.26, liquidatedAccounts: 7, adlEvents: 2 },
};

describe('a run whose accounts do not add up', () => {
  it('passes when they do (float noise within tolerance)', () => {
    expect(() =>
      assertRunConsistent('predictive', balanced.measures, balanced.conservation, balanced.summary),
    ).not.toThrow();
  });

  it('stops the backtest naming the run and the figures that disagree', () => {
    const { measures, conservation, summary } = balanced;
    const check =
      (m = measures, c = conservation, s = summary) =>
      () =>
        assertRunConsistent('predictive', m, c, s);
    expect(check(measures, { ...conservation, residual: 12.5, held: 5_000_012.5 })).toThrow(
      /run predictive: value not conserved: .*residual 12.5 USD/,
    );
    expect(check(measures, conservation, { ...summary, badDebt: 1300 })).toThrow(
      /bankruptcy deficits 1200.25 USD/,
    );
    expect(check({ ...measures, badDebt: 1600 })).toThrow(/bad debt 1600 USD is not deficits/);
    expect(check(measures, conservation, { ...summary, liquidatedAccounts: 8 })).toThrow(
      /7 accounts liquidated/,
    );
    expect(check({ ...measures, adlEvents: 3 })).toThrow(/3 ADL events/);
    expect(check(measures, { ...conservation, residual: Number.NaN })).toThrow(BacktestIntegrityError);
  });
});
