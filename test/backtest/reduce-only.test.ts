import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatTable, reportJson } from '../../src/backtest/report.js';
import { runBacktest } from '../../src/backtest/run.js';

/** flash-crash cut to four hours (the same fall in 12 minutes) */
const SHORT_CRASH = join(import.meta.dirname, 'short-crash.json');

describe('backtest: reduce-only restriction while flagged', () => {
  it('is counted per run, off means none, and both signals honour it through the same decide', async () => {
    const r = await runBacktest({
      scenario: SHORT_CRASH,
      accounts: 150,
      seed: 3,
      policies: ['liquidation-only'],
      constantPd: 0.9,
      variants: [
        { label: 'flagged', policy: 'predictive', policyConfig: { reduceOnlyWhileFlagged: true } },
        { label: 'unrestricted', policy: 'predictive', policyConfig: { reduceOnlyWhileFlagged: false } },
        {
          label: 'ratio',
          policy: 'margin-ratio',
          marginRatioThreshold: 1e9, // every account with a position is flagged
          policyConfig: { reduceOnlyWhileFlagged: true },
        },
      ],
    });
    const by = (l: string) => r.policies.find((p) => p.label === l)!;
    for (const l of ['flagged', 'ratio']) {
      const ro = by(l).summary.reduceOnly;
      expect(ro.restrictedAccounts, l).toBeGreaterThan(0);
      expect(ro.rejectedOrders, l).toBeGreaterThan(0);
      expect(by(l).restrictedFalseAlarms, l).toBeLessThanOrEqual(ro.restrictedAccounts);
    }
    expect(by('unrestricted').summary.reduceOnly).toEqual({
      restrictedAccounts: 0,
      rejectedOrders: 0,
      rejectedNotional: 0,
      cancelledOrders: 0,
    });
    expect(by('unrestricted').restrictedFalseAlarms).toBe(0);
    // the restriction changes what the flagged accounts could do, so the runs differ
    expect(by('flagged').summary.events).not.toBe(by('unrestricted').summary.events);
    expect(formatTable(r)).toMatch(/Reduce-only restriction while flagged: flagged \d+ accts restricted/);
    const json = reportJson(r) as { policies: Record<string, { simulator: { reduceOnly: unknown } }> };
    expect(json.policies.predictive?.simulator.reduceOnly).toBeDefined();
  });
});
