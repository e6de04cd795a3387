import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { GroupCounts, SelectionPoint, TraitRulePoint } from '../../src/backtest/selection.js';
import {
  formatSelectionSummary,
  type SelectionRun,
  summarizeSelections,
} from '../../src/backtest/selection-summary.js';
import { readSelectionRun } from '../../src/cli/commands/selection-summary.js';

const THRESHOLDS = [2, 5];

/**
 * A run with two groups and the rule at 2 and 5: per group and threshold (false alarms, USD bad debt in time).
 * The model's own setting is the plain rule at 5 with `ownFalseAlarms` false alarms.
 */
function run(
  scenario: string,
  seed: number,
  table: Record<'a' | 'b', Record<number, [number, number]>>,
  ownFalseAlarms: number,
  badDebt = 1000,
): SelectionRun {
  const bySetting: { label: string; counts: GroupCounts[] }[] = [];
  const points: SelectionPoint[] = [];
  const cell = (g: 'a' | 'b', t: number): GroupCounts => ({
    alerted: table[g][t]![0],
    falseAlarms: table[g][t]![0],
    badDebtInTime: table[g][t]![1],
  });
  for (const t of THRESHOLDS) {
    const counts = [cell('a', t), cell('b', t)];
    const fa = counts[0]!.falseAlarms + counts[1]!.falseAlarms;
    const bad = counts[0]!.badDebtInTime + counts[1]!.badDebtInTime;
    points.push({
      signal: 'margin-ratio',
      label: `ratio<${t}`,
      threshold: t,
      alerted: fa,
      falseAlarms: fa,
      badDebtAccountsInTime: 0,
      badDebtInTime: bad,
      inTimeShare: bad / badDebt,
      liquidatedInTime: 0,
      medianLeadMinutes: null,
    });
    bySetting.push({ label: `ratio<${t}`, counts });
  }
  const at5 = points[1]!;
  const own: SelectionPoint = {
    ...at5,
    signal: 'predictive',
    label: 'pd>=0.02 ratio<5',
    gate: 5,
    falseAlarms: ownFalseAlarms,
  };
  bySetting.push({ label: own.label, counts: [cell('a', 5), cell('b', 5)] });
  return {
    scenario,
    seed,
    reference: { badDebt },
    points: [...points, own],
    own: {
      point: own,
      ratioFalseAlarms: at5.falseAlarms,
      diff: ownFalseAlarms - at5.falseAlarms,
      verdict: 'level',
    },
    groups: {
      names: ['a', 'b'],
      accounts: [0, 0],
      badDebt: [table.a[5]![1], badDebt - table.a[5]![1]],
      bySetting,
      oracleFrontier: [],
      oracleAtOwn: null,
    },
  };
}

/** group a: every false alarm, no bad debt; group b: every dollar of bad debt, no false alarm */
const separable = (scenario: string, seed: number) =>
  run(scenario, seed, { a: { 2: [20, 0], 5: [60, 0] }, b: { 2: [0, 300], 5: [0, 800] } }, 55);

describe('selection-summary', () => {
  it('a group that carries every false alarm and none of the bad debt is left out, on days it was not chosen on', () => {
    const runs = ['d1', 'd2', 'd3'].flatMap((d) => [separable(d, 1), separable(d, 2)]);
    const [s] = summarizeSelections(runs);
    expect(s!.rule).toBe('behaviour');
    for (const row of s!.rows) {
      // the model (55 against the rule's 60) saves 1/12
      expect(row.own.gain).toBeCloseTo(5 / 60, 12);
      expect(row.leaveOneDayOut!.setting).toEqual([null, 5]);
      expect(row.leaveOneDayOut!.falseAlarms).toBe(0);
      expect(row.leaveOneDayOut!.share).toBeCloseTo(0.8, 12);
      expect(row.leaveOneDayOut!.gain).toBe(1);
      expect(row.leaveOneDayOut!.verdict).toBe('fewer');
      expect(row.outOfSeed!.setting).toEqual([null, 5]);
    }
    expect(s!.verdicts).toEqual({ fewer: 6, level: 0, more: 0, beyond: 0 });
    expect(s!.median.leaveOneDayOut).toBe(1);
    // per group over the six runs: all the bad debt on b, all the false alarms on a
    expect(
      s!.totals!.map((t) => [t.name, t.badDebt, t.own.falseAlarms, t.ruleAtGate!.badDebtInTime]),
    ).toEqual([
      ['a', 0, 360, 0],
      ['b', 6000, 0, 4800],
    ]);
    expect(formatSelectionSummary([s!])).toContain('| behaviour | 6 | 8.3% |');
  });

  it('when both groups carry false alarms and bad debt alike, knowing the group saves nothing', () => {
    const alike = (d: string, seed: number) =>
      run(d, seed, { a: { 2: [10, 150], 5: [30, 400] }, b: { 2: [10, 150], 5: [30, 400] } }, 60);
    const runs = ['d1', 'd2'].flatMap((d) => [alike(d, 1), alike(d, 2)]);
    const [s] = summarizeSelections(runs);
    for (const row of s!.rows) {
      expect(row.leaveOneDayOut!.falseAlarms).toBe(60);
      expect(row.leaveOneDayOut!.gain).toBe(0);
      expect(row.leaveOneDayOut!.verdict).toBe('level');
      expect(row.own.gain).toBe(0);
    }
  });

  it('a choice made on other days that falls short there is judged where it lands on the held-out day', () => {
    // on d2 group b carries the false alarms: the choice made on d1 (b only) costs more than the plain rule
    const runs = [
      separable('d1', 1),
      run('d2', 1, { a: { 2: [0, 300], 5: [0, 800] }, b: { 2: [20, 0], 5: [60, 0] } }, 60),
    ];
    const [s] = summarizeSelections(runs);
    const d2 = s!.rows.find((r) => r.scenario === 'd2')!;
    expect(d2.leaveOneDayOut!.setting).toEqual([null, 5]);
    expect(d2.leaveOneDayOut!.share).toBe(0);
    expect(d2.leaveOneDayOut!.falseAlarms).toBe(60);
    // below the rule's range the rule's first point (20 false alarms at 30%) is what it is judged against
    expect(d2.leaveOneDayOut!.ratioFalseAlarms).toBe(20);
    expect(d2.leaveOneDayOut!.verdict).toBe('more');
  });

  it('judges each order-flow trait: alerting only while the trait shows', () => {
    const traitRun = (d: string): SelectionRun => {
      const r = separable(d, 1);
      // with the trait: the bad-debt accounts; without: the false alarms
      const points: TraitRulePoint[] = [];
      const side = { 0: [0, 0], 2: [20, 300], 5: [60, 800] } as Record<number, [number, number]>;
      for (const without of [0, 2, 5])
        for (const w of [0, 2, 5])
          points.push({
            without,
            with: w,
            alerted: 0,
            falseAlarms: side[without]![0],
            badDebtInTime: side[w]![1],
            inTimeShare: side[w]![1] / 1000,
          });
      return {
        ...r,
        groups: undefined,
        flow: { traits: [{ name: 'adds', looksWith: 1, points, frontier: [], atOwn: 0 }] },
      };
    };
    const runs = ['d1', 'd2', 'd3'].map(traitRun);
    const s = summarizeSelections(runs);
    expect(s.map((x) => x.rule)).toEqual(['adds']);
    for (const row of s[0]!.rows) {
      expect(row.leaveOneDayOut!.setting).toEqual([0, 5]);
      expect(row.leaveOneDayOut!.gain).toBe(1);
      expect(row.inSample).toBe(1);
      expect(row.outOfSeed).toBeNull();
    }
  });

  it('refuses a run given twice, and a file that is not a grouped selection.json names the field', async () => {
    expect(() => summarizeSelections([separable('d1', 1), separable('d1', 1)])).toThrow(
      /d1 seed 1 is given twice/,
    );
    const dir = await mkdtemp(join(tmpdir(), 'preempt-selsum-'));
    try {
      const bad = join(dir, 'bad.json');
      const r = separable('d1', 1) as unknown as { points: { threshold: unknown }[] };
      r.points[0]!.threshold = 'two';
      await writeFile(bad, JSON.stringify(r));
      await expect(readSelectionRun(bad)).rejects.toThrow(
        /bad\.json: not a selection\.json: points\.0\.threshold/,
      );
      const plain = join(dir, 'plain.json');
      await writeFile(plain, JSON.stringify({ ...separable('d1', 1), groups: undefined }));
      await expect(readSelectionRun(plain)).rejects.toThrow(/neither groups nor flow/);
      const good = join(dir, 'good.json');
      await writeFile(good, JSON.stringify(separable('d1', 1)));
      expect((await readSelectionRun(good)).groups?.names).toEqual(['a', 'b']);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
