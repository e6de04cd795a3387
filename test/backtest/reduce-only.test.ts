import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatTable, reportJson } from '../../src/backtest/report.js';
import { runBacktest } from '../../src/backtest/run.js';

/** flash-crash cut to four hours (the same fall in 12 minutes) */
const SHORT_CRASH = join(import.meta.dirname, 'short-crash.json');

/** the runs both tests compare: 150 traders on the short crash, every account given pd 0.9 */
const FLAGGED_EVERYWHERE = {
  scenario: SHORT_CRASH,
  accounts: 150,
  seed: 3,
  policies: ['liquidation-only' as const],
  constantPd: 0.9,
};

describe('backtest: reduce-only restriction while flagged', () => {
  it('is counted per run, off means none, and both signals honour it through the same decide', async () => {
    const r = await runBacktest({
      ...FLAGGED_EVERYWHERE,
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

describe('backtest: the margin-ratio gate', () => {
  it('gates the pd signal only: the margin-ratio rule keeps its own trigger whatever the gate', async () => {
    const r = await runBacktest({
      ...FLAGGED_EVERYWHERE,
      variants: [
        { label: 'pd', policy: 'predictive', policyConfig: { reduceGateMarginRatio: 0 } },
        { label: 'pd gated', policy: 'predictive', policyConfig: { reduceGateMarginRatio: 1.2 } },
        {
          label: 'ratio',
          policy: 'margin-ratio',
          marginRatioThreshold: 5,
          policyConfig: { reduceGateMarginRatio: 0 },
        },
        {
          label: 'ratio, gate given',
          policy: 'margin-ratio',
          marginRatioThreshold: 5,
          policyConfig: { reduceGateMarginRatio: 1.2 },
        },
      ],
    });
    const by = (l: string) => r.policies.find((p) => p.label === l)!;
    // a pd of 0.9 everywhere: ungated, every account within 3 sigma is reduced; gated at 1.2, few are
    expect(by('pd gated').reductions).toBeLessThan(by('pd').reductions);
    expect(by('pd gated').summary.reduceOnly.restrictedAccounts).toBeLessThan(
      by('pd').summary.reduceOnly.restrictedAccounts,
    );
    expect(by('ratio').reductions).toBeGreaterThan(0);
    const { label: _a, ...ratio } = by('ratio');
    const { label: _b, ...given } = by('ratio, gate given');
    expect(JSON.stringify(given)).toBe(JSON.stringify(ratio));
  }, 60_000);
});
