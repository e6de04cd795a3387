import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parsePolicies } from '../src/backtest/policies.js';
import { formatTable, reportJson } from '../src/backtest/report.js';
import { type BacktestResult, runBacktest } from '../src/backtest/run.js';

const DOOMED = join(import.meta.dirname, 'fixtures/doomed-account.json');

function measures(r: BacktestResult, policy: string) {
  const p = r.policies.find((x) => x.policy === policy);
  if (!p) throw new Error(`no ${policy}`);
  const { summary: _s, policy: _p, badDebtAvoided: _b, conservation: _c, ...rest } = p;
  return rest;
}

describe('backtest', () => {
  it('with a pd of zero the predictive policy reproduces liquidation-only exactly', async () => {
    const r = await runBacktest({
      scenario: 'flash-crash',
      accounts: 150,
      seed: 2,
      policies: ['liquidation-only', 'predictive'],
      constantPd: 0,
    });
    const ref = measures(r, 'liquidation-only');
    expect(ref.liquidations).toBeGreaterThan(0);
    expect(measures(r, 'predictive')).toEqual(ref);
    expect(r.insuranceFund.predictive).toEqual(r.insuranceFund['liquidation-only']);
    expect(r.liquidationsPerMinute.predictive).toEqual(r.liquidationsPerMinute['liquidation-only']);
  }, 120_000);

  it('the same seed gives the same table; value is conserved in every run; measures agree with the simulator', async () => {
    const run = () =>
      runBacktest({
        scenario: 'flash-crash',
        accounts: 150,
        seed: 3,
        policies: ['liquidation-only', 'margin-ratio'],
      });
    const a = await run();
    const b = await run();
    expect(formatTable(b)).toBe(formatTable(a));
    expect(JSON.stringify(reportJson(b))).toBe(JSON.stringify(reportJson(a)));
    for (const p of a.policies) {
      expect(Math.abs(p.conservation.residual)).toBeLessThan(1e-9 * p.conservation.scale + 1e-6);
      // two independent computations: the backtest's from the events, the simulator's from its own state
      expect(p.bankruptcyDeficits).toBeCloseTo(p.summary.badDebt, 1);
      expect(p.badDebt).toBeCloseTo(p.bankruptcyDeficits + p.adlCost, 6);
      expect(p.liquidations).toBe(p.summary.liquidatedAccounts);
      expect(p.adlEvents).toBe(p.summary.adlEvents);
    }
    const rule = a.policies.find((p) => p.policy === 'margin-ratio');
    expect(rule?.reductions).toBeGreaterThan(0);
    expect(rule?.reducedNotional).toBeGreaterThan(0);
  }, 120_000);

  it('a hand-built scenario: early reduction lowers the bad debt of a doomed over-leveraged account, and can save it', async () => {
    let doomed = 0;
    let savedOutright = 0;
    for (let seed = 1; seed <= 8; seed++) {
      const r = await runBacktest({
        scenario: DOOMED,
        accounts: 1,
        seed,
        policies: ['liquidation-only', 'predictive'],
        constantPd: 1,
      });
      const ref = measures(r, 'liquidation-only');
      const pre = measures(r, 'predictive');
      if (ref.badDebt <= 0) continue;
      doomed++;
      expect(ref.liquidations).toBe(1);
      expect(pre.reductions).toBe(1);
      expect(pre.badDebt).toBeLessThan(ref.badDebt);
      if (pre.liquidations === 0) {
        savedOutright++;
        expect(pre.badDebt).toBe(0);
        expect(pre.saved).toBe(1);
        expect(pre.falseAlarms).toBe(0);
      }
    }
    expect(doomed).toBeGreaterThan(0);
    expect(savedOutright).toBeGreaterThan(0);
  }, 120_000);

  it('rejects unknown policies and always keeps the liquidation-only reference', () => {
    expect(parsePolicies(['predictive'])).toEqual(['liquidation-only', 'predictive']);
    expect(() => parsePolicies(['yolo'])).toThrow(/unknown policy "yolo"/);
  });

  it('refuses a margin-ratio exit level below its threshold, before running anything', async () => {
    let minutes = 0;
    const run = (threshold: number, exit: number) =>
      runBacktest({
        scenario: DOOMED,
        accounts: 10,
        seed: 1,
        policies: ['liquidation-only', 'margin-ratio'],
        marginRatioThreshold: threshold,
        marginRatioExit: exit,
        onProgress: () => minutes++,
      });
    await expect(run(3, 2)).rejects.toThrow(
      /margin-ratio: the margin-ratio exit level 2 is below its threshold 3/,
    );
    await expect(run(0, 2)).rejects.toThrow(/margin-ratio: the margin-ratio threshold must be > 0/);
    expect(minutes).toBe(0);
  });
});
