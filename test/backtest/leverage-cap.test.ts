import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatTable, reportJson } from '../../src/backtest/report.js';
import { runBacktest } from '../../src/backtest/run.js';

/** flash-crash cut to four hours (the same fall in 12 minutes) */
const SHORT_CRASH = join(import.meta.dirname, 'short-crash.json');

describe('backtest: leverage cap after early reduction', () => {
  it('caps exactly the accounts a run reduced, for both signals; without it the report is as before', async () => {
    const cap = { leverageCapAfterReduce: 4, leverageCapHoldMs: 86_400_000 };
    const r = await runBacktest({
      scenario: SHORT_CRASH,
      accounts: 150,
      seed: 3,
      policies: ['liquidation-only'],
      constantPd: 0.9,
      variants: [
        { label: 'capped', policy: 'predictive', policyConfig: cap },
        { label: 'uncapped', policy: 'predictive' },
        { label: 'ratio capped', policy: 'margin-ratio', marginRatioThreshold: 3, policyConfig: cap },
        { label: 'follows', policy: 'predictive', policyConfig: { leverageCapFollowsReduce: true } },
      ],
    });
    const by = (l: string) => r.policies.find((p) => p.label === l)!;
    for (const l of ['capped', 'ratio capped', 'follows']) {
      const p = by(l);
      expect(p.reductions, l).toBeGreaterThan(0);
      // every account reduced early is capped from its REDUCE on, and no other
      expect(p.summary.leverageCap.cappedAccounts, l).toBe(p.reductions);
      expect(p.summary.leverageCap.cutOrders, l).toBeGreaterThan(0);
      // value is conserved (runBacktest also refuses a run that does not conserve it)
      expect(Math.abs(p.conservation.residual), l).toBeLessThan(1e-6 * p.conservation.scale);
    }
    expect(by('uncapped').summary.leverageCap.cappedAccounts).toBe(0);
    // the cap changes what the reduced accounts could open, so the runs differ
    expect(by('capped').summary.events).not.toBe(by('uncapped').summary.events);
    expect(formatTable(r)).toMatch(
      /Leverage cap after early reduction: capped \d+ accts capped, \d+ orders cut/,
    );
    expect(formatTable(r)).not.toMatch(/uncapped \d+ accts capped/);
    const json = reportJson(r) as { policies: Record<string, { simulator: Record<string, unknown> }> };
    expect(json.policies['liquidation-only']?.simulator).not.toHaveProperty('leverageCap');
  }, 60_000);

  it('with a pd of zero nothing is reduced, so nothing is capped: the run equals liquidation-only', async () => {
    const r = await runBacktest({
      scenario: SHORT_CRASH,
      accounts: 150,
      seed: 3,
      policies: ['liquidation-only', 'predictive'],
      constantPd: 0,
      policyConfig: { leverageCapAfterReduce: 2 },
    });
    const [ref, zero] = r.policies;
    expect(zero!.summary.leverageCap.cappedAccounts).toBe(0);
    expect(zero!.badDebt).toBe(ref!.badDebt);
    expect(zero!.summary.events).toBe(ref!.summary.events);
    expect(r.liquidationsPerMinute.predictive).toEqual(r.liquidationsPerMinute['liquidation-only']);
  }, 60_000);
});
