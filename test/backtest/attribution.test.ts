import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AttributionTracker, BAD_DEBT_CAUSES } from '../../src/backtest/attribution.js';
import { MeasureCollector, newBadDebt } from '../../src/backtest/metrics.js';
import { formatTable, reportJson } from '../../src/backtest/report.js';
import { runBacktest } from '../../src/backtest/run.js';
import { FEATURE_NAMES } from '../../src/features/schema.js';
import type { Decision } from '../../src/margin/index.js';
import { logisticScorer } from '../service/test-model.js';

/** flash-crash cut to four hours (the same fall in 12 minutes) */
const SHORT_CRASH = join(import.meta.dirname, 'short-crash.json');

const MIN = 60_000;
const decision = (
  action: Decision['action'],
  marginRatio: number,
  cappedBy: string | null = null,
  mm = 100,
) =>
  ({
    action,
    marginRatio,
    mm,
    reasons: [{ rule: 'x', text: '', values: { reducedNotional: 1000, cappedBy } }],
  }) as unknown as Decision;

describe('bad-debt attribution', () => {
  it('classifies each bankruptcy: gap, never alerted, late, too small', () => {
    const t = new AttributionTracker({ pdReduce: 0.2, healthyRatio: 1.5, lateMinutes: 15 });
    // gap: healthy and quiet a minute before
    t.look(0, 'gap', 0.01, decision('HEALTHY', 4));
    t.badDebt('gap', 50_000, 100);
    // never alerted: in trouble (ratio 1.1) but the signal stayed low
    t.look(0, 'never', 0.1, decision('WATCH', 1.3));
    t.look(MIN, 'never', 0.1, decision('WATCH', 1.1));
    t.badDebt('never', MIN + 30_000, 200);
    // late: alerted 30 min before but the first REDUCE came 5 min before
    for (let m = 0; m < 30; m++)
      t.look(m * MIN, 'late', m < 25 ? 0.3 : 0.5, decision(m < 25 ? 'WATCH' : 'REDUCE', 1.2));
    t.badDebt('late', 30 * MIN, 300);
    // too small: reduced 40 min before (once capped by the interval), still bankrupt; its ADL cost joins it;
    // its maintenance margin grew from 100 to 130 after the first REDUCE (re-risked)
    for (let m = 0; m < 40; m++)
      t.look(
        m * MIN,
        'small',
        0.5,
        m % 10 === 0 ? decision('REDUCE', 1.4, m ? null : 'interval') : decision('WATCH', 1.1, null, 130),
      );
    t.badDebt('small', 40 * MIN, 400);
    t.badDebt('small', 40 * MIN, 50);
    // no position at the previous look: a gap
    t.badDebt('flat', 40 * MIN, 7);
    const r = t.result();
    expect(r.total).toBe(1057);
    expect(r.causes.gap).toEqual({ badDebt: 107, accounts: 2, bankruptcies: 2 });
    expect(r.causes['never-alerted']).toEqual({ badDebt: 200, accounts: 1, bankruptcies: 1 });
    expect(r.causes.late).toEqual({ badDebt: 300, accounts: 1, bankruptcies: 1 });
    expect(r.lateAlertedEarly).toEqual({ badDebt: 300, accounts: 1, bankruptcies: 1 });
    expect(r.causes['too-small']).toEqual({ badDebt: 450, accounts: 1, bankruptcies: 1 });
    expect(r.tooSmallReRisked).toEqual({ badDebt: 450, accounts: 1, bankruptcies: 1 });
    expect(r.tooSmallJumped).toEqual({ badDebt: 0, accounts: 0, bankruptcies: 0 });
    expect(r.tooSmallReduceDecisions).toBe(4);
    expect(r.tooSmallCappedDecisions).toBe(1);
    expect(r.largest[0]).toMatchObject({
      account: 'small',
      badDebt: 450,
      firstAlertMinutesBefore: 40,
      firstReduceMinutesBefore: 40,
      lastReduceMinutesBefore: 10,
      mmAtFirstReduce: 100,
      lastLookMm: 130,
      plannedReducedNotional: 4000,
      lastLookMarginRatio: 1.1,
    });
  });

  it('an account history restarts after a bankruptcy', () => {
    const t = new AttributionTracker({ pdReduce: 0.2, healthyRatio: 1.5 });
    for (let m = 0; m < 30; m++) t.look(m * MIN, 'a', 0.9, decision(m ? 'WATCH' : 'REDUCE', 1.2));
    t.badDebt('a', 30 * MIN, 10);
    t.look(60 * MIN, 'a', 0.05, decision('WATCH', 1.2));
    t.badDebt('a', 61 * MIN, 5);
    // alerted and reduced long before, at equity/MM 2 a minute before: too small, jumped
    for (let m = 0; m < 30; m++) t.look(m * MIN, 'b', 0.6, decision(m ? 'WATCH' : 'REDUCE', 2));
    t.badDebt('b', 29 * MIN + 20_000, 3);
    const r = t.result();
    expect(r.causes['too-small']).toEqual({ badDebt: 13, accounts: 2, bankruptcies: 2 });
    expect(r.causes['never-alerted']).toEqual({ badDebt: 5, accounts: 1, bankruptcies: 1 });
    expect(r.tooSmallReRisked).toEqual({ badDebt: 0, accounts: 0, bankruptcies: 0 });
    expect(r.tooSmallJumped).toEqual({ badDebt: 3, accounts: 1, bankruptcies: 1 });
    // in the order they were reported
    expect(r.bankruptcies.map((b) => [b.account, b.ts, b.cause])).toEqual([
      ['a', 30 * MIN, 'too-small'],
      ['a', 61 * MIN, 'never-alerted'],
      ['b', 29 * MIN + 20_000, 'too-small'],
    ]);
  });

  it('bad debt per account, and the part an early-reducing run created on accounts that left none', () => {
    const c = new MeasureCollector(1000);
    c.add({ type: 'bankruptcy', ts: 1, account: 'a', deficit: 30 });
    c.add({ type: 'bankruptcy', ts: 2, account: 'b', deficit: 5 });
    c.add({ type: 'bankruptcy', ts: 3, account: 'a', deficit: 12.5 });
    expect([...c.badDebtByAccount]).toEqual([
      ['a', 42.5],
      ['b', 5],
    ]);
    expect(c.m.badDebt).toBe(47.5);
    // liquidation-only liquidated kept (no bad debt), both (bad debt in both runs) and only-ref (bad debt there only)
    const refLiquidated = new Set(['kept', 'both', 'only-ref']);
    const refBadDebt = new Map([
      ['both', 20],
      ['only-ref', 9],
    ]);
    const run: [string, number][] = [
      ['kept', 40],
      ['both', 70],
      ['fresh', 3],
      ['fresh2', 4],
      ['zero', 0],
    ];
    expect(newBadDebt(refLiquidated, refBadDebt, run)).toEqual({
      liquidatedThere: { accounts: 1, badDebt: 40 },
      notLiquidatedThere: { accounts: 2, badDebt: 7 },
    });
    expect(newBadDebt(refLiquidated, refBadDebt, refBadDebt)).toEqual({
      liquidatedThere: { accounts: 0, badDebt: 0 },
      notLiquidatedThere: { accounts: 0, badDebt: 0 },
    });
  });

  it('sums to each early-reducing run’s bad debt in a backtest', async () => {
    const r = await runBacktest({
      scenario: SHORT_CRASH,
      accounts: 200,
      seed: 2,
      policies: ['liquidation-only', 'predictive', 'margin-ratio'],
      scorer: logisticScorer(FEATURE_NAMES, 'margin_ratio_log', 4, Math.log(3)),
    });
    expect(Object.keys(r.attribution)).toEqual(['predictive', 'margin-ratio']);
    for (const p of r.policies.slice(1)) {
      const a = r.attribution[p.policy];
      if (!a) throw new Error(`no attribution for ${p.policy}`);
      expect(p.badDebt).toBeGreaterThan(0);
      expect(a.total).toBeCloseTo(p.badDebt, 6);
      const byCause = BAD_DEBT_CAUSES.reduce((s, c) => s + a.causes[c].badDebt, 0);
      expect(byCause).toBeCloseTo(p.badDebt, 6);
      const bankruptcies = BAD_DEBT_CAUSES.reduce((s, c) => s + a.causes[c].bankruptcies, 0);
      expect(bankruptcies).toBeGreaterThanOrEqual(p.bankruptcies);
      expect(a.bankruptcies.length).toBe(bankruptcies);
    }
    // the reports carry the breakdown, not the list of every bankruptcy
    const json = reportJson(r) as { attribution: Record<string, Record<string, unknown>> };
    expect(json.attribution.predictive?.causes).toEqual(r.attribution.predictive?.causes);
    expect(json.attribution.predictive).not.toHaveProperty('bankruptcies');
    expect(formatTable(r)).toMatch(/- predictive: bad debt left \$[\d,]+ = gap \$/);
    // what reducing early created is part of what each run left, and nothing for the reference itself
    expect(r.policies[0]?.newBadDebt).toEqual({
      liquidatedThere: { accounts: 0, badDebt: 0 },
      notLiquidatedThere: { accounts: 0, badDebt: 0 },
    });
    for (const p of r.policies.slice(1)) {
      const { liquidatedThere: l, notLiquidatedThere: n } = p.newBadDebt;
      expect(l.badDebt + n.badDebt).toBeLessThanOrEqual(p.badDebt + 1e-6);
      expect(l.accounts + n.accounts).toBeLessThanOrEqual(p.bankruptcies);
    }
    expect(formatTable(r)).toMatch(
      /Bad debt on accounts that left none in liquidation-only: predictive \$[\d,]+ \(\d+ accts; /,
    );
  }, 60_000);
});
