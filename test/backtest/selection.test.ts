import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runBacktest } from '../../src/backtest/run.js';
import {
  formatSelection,
  runSelection,
  type SelectionResult,
  writeSelectionReport,
} from '../../src/backtest/selection.js';
import { loadScorer, type ModelScorer } from '../../src/model/scorer.js';
import type { PdScorer } from '../../src/model/types.js';

/** flash-crash cut to four hours (the same fall in 12 minutes) */
const SHORT_CRASH = join(import.meta.dirname, 'short-crash.json');
const MODEL = join(import.meta.dirname, '../../models/default');

/** the same pd for every row */
function constant(pd: number): PdScorer {
  return {
    info: {} as PdScorer['info'],
    score: async (_m, rows) => new Float32Array(rows).fill(pd),
    explain: async () => [],
    close: async () => {},
  };
}

const base = {
  scenario: SHORT_CRASH,
  accounts: 150,
  seed: 3,
  pdThresholds: [0.02, 0.1, 0.3],
  gates: [3, 0],
  ratioThresholds: [1.5, 3, 5],
  own: { pdReduce: 0.1, gate: 3 },
};
const byLabel = (r: SelectionResult, label: string) => r.points.find((p) => p.label === label)!;

describe('selection: alerts on the liquidation-only path', () => {
  let scorer: ModelScorer;
  let model: SelectionResult;
  beforeAll(async () => {
    scorer = await loadScorer(MODEL, { workers: 0 });
    model = await runSelection({ ...base, scorer });
  }, 120_000);
  afterAll(async () => {
    await scorer?.close();
  });

  it('is the liquidation-only run itself: nothing acts on the alerts', async () => {
    const ref = await runBacktest({
      scenario: SHORT_CRASH,
      accounts: 150,
      seed: 3,
      policies: ['liquidation-only'],
    });
    const lo = ref.policies[0]!;
    expect(lo.badDebt).toBeGreaterThan(0);
    expect(model.reference.badDebt).toBe(lo.badDebt);
    expect(model.reference.liquidated).toBe(lo.liquidations);
    expect(model.minutes).toBe(ref.minutes);
  }, 60_000);

  it('with a pd of 1 everywhere, the model at a gate alerts exactly as the rule at that threshold', async () => {
    const r = await runSelection({ ...base, scorer: constant(1) });
    for (const key of [
      'alerted',
      'falseAlarms',
      'badDebtInTime',
      'liquidatedInTime',
      'medianLeadMinutes',
    ] as const)
      expect(byLabel(r, 'pd>=0.1 ratio<3')[key], key).toEqual(byLabel(r, 'ratio<3')[key]);
    // no gate: every account with a position is alerted at its first look
    expect(byLabel(r, 'pd>=0.1').alerted).toBeGreaterThan(byLabel(r, 'ratio<5').alerted);
  }, 60_000);

  it('a lower threshold alerts a superset: counts never fall as the rule widens or the pd threshold drops', () => {
    const rule = ['ratio<1.5', 'ratio<3', 'ratio<5'].map((l) => byLabel(model, l));
    const pd = ['pd>=0.3 ratio<3', 'pd>=0.1 ratio<3', 'pd>=0.02 ratio<3'].map((l) => byLabel(model, l));
    for (const series of [rule, pd])
      for (let i = 1; i < series.length; i++) {
        expect(series[i]!.alerted).toBeGreaterThanOrEqual(series[i - 1]!.alerted);
        expect(series[i]!.falseAlarms).toBeGreaterThanOrEqual(series[i - 1]!.falseAlarms);
        expect(series[i]!.badDebtInTime).toBeGreaterThanOrEqual(series[i - 1]!.badDebtInTime);
      }
    expect(byLabel(model, 'ratio<5').alerted).toBeGreaterThan(byLabel(model, 'ratio<1.5').alerted);
    for (const p of model.points) {
      expect(p.falseAlarms).toBeLessThanOrEqual(p.alerted);
      expect(p.badDebtInTime).toBeLessThanOrEqual(model.reference.badDebt + 1e-9);
      expect(p.inTimeShare).toBeGreaterThanOrEqual(0);
      expect(p.inTimeShare).toBeLessThanOrEqual(1 + 1e-12);
    }
  });

  it("judges the policy's own setting against the rule's frontier and prints both verdicts", () => {
    expect(model.own.point.label).toBe('pd>=0.1 ratio<3');
    // on this day the rule's frontier reaches the own setting's share, so there is a number to compare with
    expect(model.own.ratioFalseAlarms).not.toBeNull();
    const diff = model.own.point.falseAlarms - (model.own.ratioFalseAlarms as number);
    expect(model.own.diff).toBeCloseTo(diff, 9);
    expect(model.own.verdict).toBe(Math.abs(diff) <= 4 ? 'level' : diff < 0 ? 'fewer' : 'more');
    const text = formatSelection(model);
    expect(text).toContain("at the policy's own settings (pd>=0.1 ratio<3)");
    expect(text).toMatch(/frontiers \(every setting of each signal\): /);
  });

  it('writes the result, the table and a chart of both frontiers', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'preempt-selection-'));
    try {
      await writeSelectionReport(dir, model, { model: 'models/default' });
      const json = JSON.parse(await readFile(join(dir, 'selection.json'), 'utf8'));
      expect(json.model).toBe('models/default');
      expect(json.own.verdict).toBe(model.own.verdict);
      expect(json.points).toHaveLength(model.points.length);
      expect(await readFile(join(dir, 'selection.md'), 'utf8')).toContain(formatSelection(model));
      const svg = await readFile(join(dir, 'frontier.svg'), 'utf8');
      expect(svg.startsWith('<svg')).toBe(true);
      for (const name of ['predictive frontier', 'margin-ratio frontier', 'predictive at equity/MM &lt; 3'])
        expect(svg).toContain(name);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('counts nothing in time when the lead asked for is longer than the run', async () => {
    const r = await runSelection({ ...base, scorer: constant(1), leadMinutes: 1_000_000 });
    for (const p of r.points) {
      expect(p.badDebtInTime).toBe(0);
      expect(p.liquidatedInTime).toBe(0);
    }
    expect(r.points.some((p) => p.alerted > 0)).toBe(true);
  }, 60_000);

  it('refuses a negative gate or a threshold of zero before running anything', async () => {
    await expect(runSelection({ ...base, scorer: constant(1), gates: [-1] })).rejects.toThrow(
      /gates must be >= 0/,
    );
    await expect(runSelection({ ...base, scorer: constant(1), ratioThresholds: [0] })).rejects.toThrow(
      /ratio thresholds must be > 0/,
    );
  });
});
