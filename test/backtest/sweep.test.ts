import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BAD_DEBT_CAUSES } from '../../src/backtest/attribution.js';
import {
  atSettings,
  atSettingsText,
  predictiveLabel,
  runSweep,
  type SweepResult,
  type SweepSignal,
} from '../../src/backtest/sweep.js';
import {
  formatSweepTable,
  frontierChart,
  loadReusableSweep,
  predictiveSettingsOf,
  sweepJson,
  writeSweepReport,
} from '../../src/backtest/sweep-report.js';
import { FEATURE_NAMES } from '../../src/features/schema.js';
import { UNGATED_TIERS } from '../margin/fixtures.js';
import { logisticScorer } from '../service/test-model.js';

/** flash-crash cut to four hours (the same fall in 12 minutes) */
const SHORT_CRASH = join(import.meta.dirname, 'short-crash.json');

// a deterministic stand-in for the model: pd 0.5 at equity / MM = 3, falling as the ratio rises
const scorer = () => logisticScorer(FEATURE_NAMES, 'margin_ratio_log', 4, Math.log(3));

/** the small sweep every test runs: 150 traders on the short crash, ungated tiers */
const SMALL = {
  scenario: SHORT_CRASH,
  accounts: 150,
  seed: 3,
  policyConfig: { ...UNGATED_TIERS, maxReduceFractionPerInterval: 0.5 },
};

/** frontier membership is by run, not by threshold (several runs share a threshold) */
function expectFrontierByRun(r: SweepResult, signal: SweepSignal): void {
  const onFrontier = r.points.filter((p) => p.signal === signal && p.onFrontier).map((p) => p.label);
  expect(onFrontier.sort()).toEqual(r.frontiers[signal].map((f) => f.label as string).sort());
}

describe('threshold sweep', () => {
  it('is deterministic for a seed, runs liquidation-only once and reports every threshold', async () => {
    const runs: string[] = [];
    const sweep = (track: boolean): Promise<SweepResult> =>
      runSweep({
        ...SMALL,
        // the policy's own pdReduce in the grid (else its run is added; tested below)
        policyConfig: { ...SMALL.policyConfig, pdReduce: 0.1 },
        scorer: scorer(),
        pdThresholds: [0.1, 0.5],
        ratioThresholds: [1.5, 5],
        onProgress: (run, minute) => {
          if (track && minute === 1) runs.push(run);
        },
      });
    const a = await sweep(true);
    const b = await sweep(false);
    expect(runs).toEqual([
      'liquidation-only',
      'predictive pd>=0.1',
      'predictive pd>=0.5',
      'margin-ratio <1.5',
      'margin-ratio <5',
    ]);
    expect(JSON.stringify(sweepJson(b))).toBe(JSON.stringify(sweepJson(a)));
    expect(formatSweepTable(b)).toBe(formatSweepTable(a));
    expect(frontierChart(b)).toBe(frontierChart(a));

    expect(a.reference.badDebt).toBeGreaterThan(0);
    expect(a.points.map((p) => [p.signal, p.threshold])).toEqual([
      ['predictive', 0.1],
      ['predictive', 0.5],
      ['margin-ratio', 1.5],
      ['margin-ratio', 5],
    ]);
    expect(a.points[0]?.pdWatch).toBe(0.05);
    expect(a.points[1]?.pdWatch).toBe(0.05);
    for (const p of a.points) {
      expect(p.avoided).toBeCloseTo(1 - p.badDebt / a.reference.badDebt, 12);
      expect(p.attribution.total).toBeCloseTo(p.badDebt, 6);
      expect(BAD_DEBT_CAUSES.reduce((s, c) => s + p.attribution.causes[c].badDebt, 0)).toBeCloseTo(
        p.badDebt,
        6,
      );
    }
    // the lower trigger acts on more accounts
    expect(a.points[0]!.falseAlarms).toBeGreaterThanOrEqual(a.points[1]!.falseAlarms);
    expect(a.points[3]!.reducedNotional).toBeGreaterThan(a.points[2]!.reducedNotional);
    for (const s of ['predictive', 'margin-ratio'] as const) expect(a.frontiers[s].length).toBeGreaterThan(0);
    expect(a.comparison.verdict).toMatch(/predictive|no comparison/);
    expect(formatSweepTable(a)).toContain(`verdict: ${a.comparison.verdict}`);
  }, 60_000);

  it('runs every pd threshold at every margin-ratio gate; a gated run reduces less; the frontier spans both', async () => {
    const r = await runSweep({
      ...SMALL,
      policyConfig: { ...SMALL.policyConfig, pdReduce: 0.1 },
      scorer: scorer(),
      pdThresholds: [0.1, 0.5],
      ratioThresholds: [],
      gates: [0, 2],
    });
    expect(r.points.map((p) => p.label)).toEqual([
      'predictive pd>=0.1',
      'predictive pd>=0.5',
      'predictive pd>=0.1 ratio<2',
      'predictive pd>=0.5 ratio<2',
    ]);
    expect(r.points.map((p) => p.gate)).toEqual([0, 0, 2, 2]);
    // pd 0.1 is reached near equity / MM 5.2: the gate at 2 holds most of those reductions back
    expect(r.points[2]!.reducedNotional).toBeLessThan(r.points[0]!.reducedNotional);
    expect(r.points[2]!.falseAlarms).toBeLessThanOrEqual(r.points[0]!.falseAlarms);
    expectFrontierByRun(r, 'predictive');
    expect(formatSweepTable(r)).toContain('pd >= 0.1 (watch 0.05), armed only at equity/MM < 2');
    expect(frontierChart(r)).toContain('predictive armed at equity/MM &lt; 2, all thresholds');
  }, 60_000);

  it('runs every ratio threshold at every exit factor; a sticky rule reduces more; the frontier spans both', async () => {
    const r = await runSweep({
      ...SMALL,
      pdThresholds: [],
      ratioThresholds: [1.5, 3],
      ratioExitFactors: [1, 1.3],
    });
    expect(r.points.map((p) => p.label)).toEqual([
      'margin-ratio <1.5',
      'margin-ratio <3',
      'margin-ratio <1.5 exit>=1.95',
      'margin-ratio <3 exit>=3.9',
    ]);
    expect(r.points.map((p) => p.exit)).toEqual([1.5, 3, 1.95, 3.9]);
    // armed for longer, the sticky rule keeps reducing after a reduction lifts the ratio above the trigger
    // (at 1.5 it arms on three accounts and, on this short crash, reduces them no more than the plain rule)
    expect(r.points[2]!.reducedNotional).toBeGreaterThanOrEqual(r.points[0]!.reducedNotional);
    expect(r.points[3]!.reducedNotional).toBeGreaterThan(r.points[1]!.reducedNotional);
    expect(r.points[3]!.refusedOrders).toBeGreaterThan(r.points[1]!.refusedOrders);
    expectFrontierByRun(r, 'margin-ratio');
    expect(formatSweepTable(r)).toContain('equity/MM < 1.5, armed until >= 1.95');
    expect(frontierChart(r)).toContain(
      'margin-ratio armed until equity/MM &gt;= 1.3 x threshold, all thresholds',
    );
  }, 60_000);

  it('--ratio-from: takes the margin-ratio runs from an earlier sweep, equal to running them; refuses a mismatch', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'preempt-sweep-'));
    try {
      const settings = {
        ...SMALL,
        pdThresholds: [0.2], // the policy's own (UNGATED_TIERS)
        ratioThresholds: [1.5, 3],
        ratioExitFactors: [1, 1.3],
      };
      // the earlier sweep, with a model that scores every account at pd 0.05
      await writeSweepReport(dir, await runSweep({ ...settings, constantPd: 0.05 }));
      const earlier = await loadReusableSweep(join(dir, 'sweep.json'));
      const ratioFrom = { source: join(dir, 'sweep.json'), sweep: earlier };

      // another model: running everything, and reusing the ratio rule's runs, give the same sweep
      const runs: string[] = [];
      const full = await runSweep({ ...settings, scorer: scorer() });
      const reused = await runSweep({
        ...settings,
        scorer: scorer(),
        ratioFrom,
        onProgress: (run, minute) => {
          if (minute === 1) runs.push(run);
        },
      });
      expect(runs).toEqual(['liquidation-only', 'predictive pd>=0.2']);
      expect(reused.ratioFrom).toBe(ratioFrom.source);
      const pointsOf = (r: SweepResult) =>
        (sweepJson(r) as { points: Record<string, unknown>[] }).points.map(({ reused: _r, ...p }) => p);
      expect(pointsOf(reused)).toEqual(pointsOf(full));
      expect(reused.comparison).toEqual(full.comparison);
      expect(reused.points.filter((p) => p.reused).map((p) => p.label)).toEqual([
        'margin-ratio <1.5',
        'margin-ratio <3',
        'margin-ratio <1.5 exit>=1.95',
        'margin-ratio <3 exit>=3.9',
      ]);
      expect(formatSweepTable(reused)).toContain(`margin-ratio runs: taken from ${ratioFrom.source}`);

      // refused: another population, another policy config, a setting it does not hold, another reference run
      const again = (o: object) => runSweep({ ...settings, constantPd: 0.05, ratioFrom, ...o });
      await expect(again({ seed: 4 })).rejects.toThrow(/--ratio-from .*: seed 3, not 4/);
      await expect(again({ policyConfig: { ...SMALL.policyConfig, kSigma: 2 } })).rejects.toThrow(
        /policy config .*differ beyond the pd tier's/,
      );
      // ... but not for another pd tier (the rule's runs do not depend on it: the test below); the grid's pd
      // 0.2 runs at the config's gate, and the config's own pdReduce and gate are added to it
      const otherTier = await runSweep({
        ...settings,
        constantPd: 0.05,
        ratioFrom,
        policyConfig: { ...SMALL.policyConfig, pdReduce: 0.3, reduceGateMarginRatio: 8 },
      });
      expect(otherTier.points.filter((p) => p.signal === 'predictive').map((p) => p.label)).toEqual([
        'predictive pd>=0.2 ratio<8',
        'predictive pd>=0.3 ratio<8',
      ]);
      expect(otherTier.points.filter((p) => p.reused)).toHaveLength(4);
      expect(otherTier.policyConfig).toEqual({
        ...SMALL.policyConfig,
        pdReduce: 0.3,
        reduceGateMarginRatio: 8,
      });
      await expect(again({ ratioThresholds: [1.5, 5] })).rejects.toThrow(/no run "margin-ratio <5"/);
      // without a grid of the rule, every run of it in the earlier sweep is taken, in its order
      const { ratioThresholds: _t, ratioExitFactors: _f, ...noRuleGrid } = settings;
      const all = await runSweep({ ...noRuleGrid, scorer: scorer(), ratioFrom });
      expect(all.points.filter((p) => p.signal === 'margin-ratio').map((p) => [p.label, p.reused])).toEqual(
        reused.points.filter((p) => p.signal === 'margin-ratio').map((p) => [p.label, true]),
      );
      expect(pointsOf(all)).toEqual(pointsOf(reused));
      // a grid of one half only (thresholds or exit factors) is a grid: the other half takes its default
      await expect(again({ ratioExitFactors: undefined })).resolves.toMatchObject({
        points: expect.arrayContaining([expect.objectContaining({ label: 'margin-ratio <3', reused: true })]),
      });
      await expect(again({ lateMinutes: 30 })).rejects.toThrow(/late-minutes 15, not 30/);
      const tampered = {
        ...earlier,
        reference: { ...earlier.reference, badDebt: earlier.reference.badDebt + 1 },
      };
      await expect(again({ ratioFrom: { source: 'x', sweep: tampered } })).rejects.toThrow(
        /liquidation-only run differs/,
      );
      // not a sweep.json: the file and the field
      await writeFile(join(dir, 'bad.json'), JSON.stringify({ ...earlier, points: [{ label: 'x' }] }));
      await expect(loadReusableSweep(join(dir, 'bad.json'))).rejects.toThrow(
        /bad\.json: not a sweep\.json: points\.0\.signal/,
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 120_000);

  it('--predictive-from: runs the predictive settings of an earlier sweep, equal to its grid; refuses a mislabelled or doubled setting', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'preempt-sweep-'));
    try {
      // a grid whose pairs are not all of one product once the policy's own run (pd 0.2, ungated) is added
      const grid = { ...SMALL, pdThresholds: [0.1, 0.3], gates: [0, 4], ratioThresholds: [] };
      await writeSweepReport(dir, await runSweep({ ...grid, constantPd: 0.05 }));
      const source = join(dir, 'sweep.json');
      const settings = predictiveSettingsOf(await loadReusableSweep(source), source);
      expect(settings).toEqual([
        { pdReduce: 0.1, gate: 0 },
        { pdReduce: 0.3, gate: 0 },
        { pdReduce: 0.1, gate: 4 },
        { pdReduce: 0.3, gate: 4 },
        { pdReduce: 0.2, gate: 0 },
      ]);
      // the same runs with another model: every point equal to running the grid with it, and no run added
      const runs: string[] = [];
      const fromFile = await runSweep({
        ...SMALL,
        scorer: scorer(),
        pdThresholds: [],
        predictive: settings,
        ratioThresholds: [],
        onProgress: (run, minute) => {
          if (minute === 1) runs.push(run);
        },
      });
      const fromGrid = await runSweep({ ...grid, scorer: scorer() });
      expect(runs.slice(1).sort()).toEqual(settings.map((s) => predictiveLabel(s.pdReduce, s.gate)).sort());
      expect(sweepJson(fromFile)).toEqual(sweepJson(fromGrid));
      // another policy config: its own run is added to the file's settings
      const other = await runSweep({
        ...SMALL,
        policyConfig: { ...SMALL.policyConfig, pdReduce: 0.5, reduceGateMarginRatio: 4 },
        constantPd: 0.05,
        pdThresholds: [],
        predictive: settings,
        ratioThresholds: [],
      });
      expect(other.points.map((p) => p.label).at(-1)).toBe('predictive pd>=0.5 ratio<4');
      expect(other.points).toHaveLength(settings.length + 1);
      // refused: the grid and the pairs both, a doubled pair, a pair out of range, a label that names another run
      const run = (o: object) =>
        runSweep({ ...SMALL, constantPd: 0.05, pdThresholds: [], ratioThresholds: [], ...o });
      await expect(run({ pdThresholds: [0.1], predictive: settings })).rejects.toThrow(/given twice: as pd/);
      await expect(run({ gates: [4], predictive: settings })).rejects.toThrow(/given twice: as pd/);
      await expect(run({ predictive: [settings[0], settings[0]] })).rejects.toThrow(
        /predictive pd>=0.1 is given twice/,
      );
      await expect(run({ predictive: [{ pdReduce: 1.5, gate: 0 }] })).rejects.toThrow(/out of range/);
      const json = JSON.parse(await readFile(source, 'utf8')) as { points: Record<string, unknown>[] };
      json.points[2]!.gate = 5;
      const relabelled = join(dir, 'relabelled.json'); // the name errors give the file
      expect(() => predictiveSettingsOf(JSON.parse(JSON.stringify(json)), relabelled)).toThrow(
        /--predictive-from .*relabelled\.json: .*points\.2\.threshold: pd 0\.1 and gate 5 are not the run its label "predictive pd>=0\.1 ratio<4" names/,
      );
      delete json.points[2]!.gate;
      expect(() => predictiveSettingsOf(JSON.parse(JSON.stringify(json)), relabelled)).toThrow(
        /points\.2\.gate/,
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 120_000);

  it("the margin-ratio rule's runs do not depend on the pd tier's settings (what lets --ratio-from outlive a change of them)", async () => {
    const ratioOnly = (policyConfig: object) =>
      runSweep({ ...SMALL, policyConfig, constantPd: 0, pdThresholds: [], ratioThresholds: [1.5, 3] });
    const a = await ratioOnly(SMALL.policyConfig);
    const b = await ratioOnly({
      ...SMALL.policyConfig,
      pdWatch: 0.1,
      pdReduce: 0.3,
      pdHysteresis: 0.01,
      pdFull: 0.9,
      reduceGateMarginRatio: 8,
    });
    const points = (r: SweepResult) =>
      r.points.map(({ label, badDebt, falseAlarms, reducedNotional }) => ({
        label,
        badDebt,
        falseAlarms,
        reducedNotional,
      }));
    expect(points(a)).toHaveLength(2);
    expect(points(a).every((p) => p.reducedNotional > 0)).toBe(true);
    expect(points(b)).toEqual(points(a));
  }, 120_000);

  it("without --gates runs the policy's own gate; reports the run at the policy's own settings against the rule", async () => {
    const { reduceGateMarginRatio: _ungated, ...tiers } = SMALL.policyConfig;
    const r = await runSweep({
      ...SMALL,
      policyConfig: tiers, // pdReduce 0.2 from the tiers, the gate left to the defaults (equity/MM < 5)
      scorer: scorer(),
      pdThresholds: [0.2, 0.5],
      ratioThresholds: [1.5, 3, 5],
    });
    // the settings it resolved to are recorded in sweep.json (what sweep-summary judges later)
    expect(r.ownSettings).toEqual({ pdReduce: 0.2, gate: 5 });
    expect((sweepJson(r) as { ownSettings: unknown }).ownSettings).toEqual({ pdReduce: 0.2, gate: 5 });
    const predictive = r.points.filter((p) => p.signal === 'predictive');
    expect(predictive.map((p) => [p.label, p.gate])).toEqual([
      ['predictive pd>=0.2 ratio<5', 5],
      ['predictive pd>=0.5 ratio<5', 5],
    ]);
    // on this short crash the gated run at pd 0.2 avoids less than any run of the rule: nothing to compare
    const own = predictive[0]!;
    const ruleLeast = Math.min(...r.frontiers['margin-ratio'].map((f) => f.avoided));
    expect(own.avoided).toBeLessThan(ruleLeast);
    expect(r.atSettings).toBeNull();
    expect(formatSweepTable(r)).not.toContain("at the policy's own settings");
    // where there is a comparison, the table prints it after the verdict
    const at = atSettings(
      [
        { ...own, avoided: 0.7 },
        ...r.points.filter((p) => p.signal === 'margin-ratio').map((p) => ({ ...p, avoided: 0.6 })),
      ],
      0.2,
      5,
    );
    expect(at?.verdict).toBe('beyond');
    expect(formatSweepTable({ ...r, atSettings: at })).toContain(
      `verdict: ${r.comparison.verdict}\nat the policy's own settings (${own.label}): 70.0% avoided with ${own.falseAlarms} false alarms`,
    );
    // a grid without the policy's own settings gets their run added (pd 0.2 ungated here), which
    // `atSettings` then judges; a sweep of the rule alone runs no predictive run at all
    const other = await runSweep({ ...SMALL, scorer: scorer(), pdThresholds: [0.5], ratioThresholds: [1.5] });
    expect(other.points.map((p) => p.label)).toEqual([
      'predictive pd>=0.5',
      'predictive pd>=0.2',
      'margin-ratio <1.5',
    ]);
    expect(other.points[1]!.threshold).toBe(0.2);
    expect(other.points[1]!.gate).toBe(0);
    if (other.atSettings) expect(other.atSettings.label).toBe('predictive pd>=0.2');
    const ruleAlone = await runSweep({ ...SMALL, constantPd: 0, pdThresholds: [], ratioThresholds: [1.5] });
    expect(ruleAlone.points.map((p) => p.label)).toEqual(['margin-ratio <1.5']);
    expect(ruleAlone.atSettings).toBeNull();
  }, 60_000);

  it('atSettings: interpolates the rule at the run, calls a gap of at most 4 level, and says when the rule never gets there', () => {
    const pt = (
      signal: SweepSignal,
      threshold: number,
      avoided: number,
      falseAlarms: number,
      gate?: number,
    ) => ({
      signal,
      label: `${signal} ${threshold} ${gate ?? ''}`,
      threshold,
      gate,
      avoided,
      falseAlarms,
      reducedRatio: 1,
    });
    const rule = [
      pt('margin-ratio', 3, 0.4, 40),
      pt('margin-ratio', 5, 0.6, 100),
      pt('margin-ratio', 8, 0.8, 200),
    ];
    // at 0.7 the rule's frontier is at 150: 90 is 60 fewer
    const fewer = atSettings([pt('predictive', 0.02, 0.7, 90, 5), ...rule], 0.02, 5);
    expect(fewer?.verdict).toBe('fewer');
    expect(fewer?.ratioFalseAlarms).toBeCloseTo(150, 9);
    expect(fewer?.diff).toBeCloseTo(-60, 9);
    expect(atSettingsText(fewer!)).toContain('about 150: 60 fewer');
    expect(atSettings([pt('predictive', 0.02, 0.7, 153, 5), ...rule], 0.02, 5)?.verdict).toBe('level');
    expect(atSettings([pt('predictive', 0.02, 0.7, 155, 5), ...rule], 0.02, 5)?.verdict).toBe('more');
    expect(atSettings([pt('predictive', 0.02, 0.7, 147, 5), ...rule], 0.02, 5)?.verdict).toBe('level');
    expect(atSettings([pt('predictive', 0.02, 0.7, 145, 5), ...rule], 0.02, 5)?.verdict).toBe('fewer');
    const beyond = atSettings([pt('predictive', 0.02, 0.9, 300, 5), ...rule], 0.02, 5);
    expect(beyond).toMatchObject({ ratioFalseAlarms: null, diff: null, verdict: 'beyond' });
    expect(atSettingsText(beyond!)).toContain('never avoids as much (its best: 80.0% with 200 false alarms)');
    // below the rule's least-avoiding point there is nothing to compare; another gate is another run
    expect(atSettings([pt('predictive', 0.02, 0.3, 10, 5), ...rule], 0.02, 5)).toBeNull();
    expect(atSettings([pt('predictive', 0.02, 0.7, 90, 8), ...rule], 0.02, 5)).toBeNull();
    // a dominated rule point is not on the frontier: 0.7 interpolates between 0.6/100 and 0.8/200 still
    const withDominated = [...rule, pt('margin-ratio', 6, 0.65, 400)];
    expect(
      atSettings([pt('predictive', 0.02, 0.7, 90, 5), ...withDominated], 0.02, 5)?.ratioFalseAlarms,
    ).toBeCloseTo(150, 9);
  });

  it('rejects bad threshold lists', async () => {
    const base = { scenario: SHORT_CRASH, accounts: 10, seed: 1, constantPd: 0 };
    await expect(runSweep({ ...base, pdThresholds: [0.2, 0.2], ratioThresholds: [] })).rejects.toThrow(
      /given twice/,
    );
    await expect(runSweep({ ...base, pdThresholds: [1.5], ratioThresholds: [] })).rejects.toThrow(
      /out of range/,
    );
    await expect(runSweep({ ...base, pdThresholds: [], ratioThresholds: [] })).rejects.toThrow(
      /at least one/,
    );
    await expect(
      runSweep({ ...base, pdThresholds: [0.2], ratioThresholds: [], gates: [-1] }),
    ).rejects.toThrow(/gates: -1 is out of range/);
    await expect(runSweep({ ...base, pdThresholds: [0.2], ratioThresholds: [], gates: [] })).rejects.toThrow(
      /gates: give at least one/,
    );
    await expect(
      runSweep({ ...base, pdThresholds: [], ratioThresholds: [2], ratioExitFactors: [0.5] }),
    ).rejects.toThrow(/ratio exit factors: 0.5 is out of range/);
  });
});
