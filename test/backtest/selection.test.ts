import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runBacktest } from '../../src/backtest/run.js';
import {
  formatSelection,
  type GroupCounts,
  groupRuleFrontier,
  runSelection,
  type SelectionResult,
  writeSelectionReport,
} from '../../src/backtest/selection.js';
import { paretoFrontier } from '../../src/backtest/sweep.js';
import { loadScorer, type ModelScorer } from '../../src/model/scorer.js';
import type { PdScorer } from '../../src/model/types.js';
import { loadScenario } from '../../src/sim/scenario/load.js';
import { createPopulation } from '../../src/sim/traders/population.js';

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

  describe('by behaviour', () => {
    let grouped: SelectionResult;
    beforeAll(async () => {
      grouped = await runSelection({ ...base, scorer, byBehaviour: true });
    }, 120_000);

    it('leaves every setting as it was, and splits each one into the behaviours exactly', () => {
      expect(grouped.points).toEqual(model.points);
      expect(grouped.own).toEqual(model.own);
      expect(model.groups).toBeUndefined();
      const g = grouped.groups!;
      expect(g.bySetting.map((b) => b.label)).toEqual(grouped.points.map((p) => p.label));
      grouped.points.forEach((p, k) => {
        const counts = g.bySetting[k]!.counts;
        expect(counts).toHaveLength(g.names.length);
        const sum = (f: (c: GroupCounts) => number) => counts.reduce((a, c) => a + f(c), 0);
        expect(
          sum((c) => c.alerted),
          p.label,
        ).toBe(p.alerted);
        expect(
          sum((c) => c.falseAlarms),
          p.label,
        ).toBe(p.falseAlarms);
        expect(sum((c) => c.badDebtInTime)).toBeCloseTo(p.badDebtInTime, 6);
      });
      expect(g.badDebt.reduce((a, b) => a + b, 0)).toBeCloseTo(grouped.reference.badDebt, 6);
    });

    it("groups the accounts by the population's behaviour", () => {
      const g = grouped.groups!;
      const population = createPopulation(loadScenario(SHORT_CRASH).scenario, base.accounts, base.seed);
      g.names.forEach((name, k) => {
        const drawn = population.filter((t) => t.behaviour === name).length;
        expect(g.accounts[k]!, name).toBeLessThanOrEqual(drawn);
        if (drawn === 0) expect(g.badDebt[k]).toBe(0);
      });
      // the crash bankrupts someone, so some behaviour carries bad debt and was seen
      expect(Math.max(...g.badDebt)).toBeGreaterThan(0);
    });

    it("the oracle's frontier reaches every plain rule setting, and each point is its thresholds' sum", () => {
      const g = grouped.groups!;
      const rule = grouped.points
        .map((p, k) => ({ p, counts: g.bySetting[k]!.counts }))
        .filter((x) => x.p.signal === 'margin-ratio');
      for (const { p } of rule)
        expect(
          g.oracleFrontier.some((o) => o.avoided >= p.inTimeShare - 1e-12 && o.falseAlarms <= p.falseAlarms),
          p.label,
        ).toBe(true);
      for (const o of g.oracleFrontier) {
        let fa = 0;
        let bad = 0;
        o.thresholds.forEach((t, k) => {
          if (t === null) return;
          const c = rule.find((x) => x.p.threshold === t)!.counts[k]!;
          fa += c.falseAlarms;
          bad += c.badDebtInTime;
        });
        expect(o.falseAlarms).toBe(fa);
        expect(o.avoided).toBeCloseTo(bad / grouped.reference.badDebt, 12);
      }
      for (let i = 1; i < g.oracleFrontier.length; i++) {
        expect(g.oracleFrontier[i]!.avoided).toBeGreaterThan(g.oracleFrontier[i - 1]!.avoided);
        expect(g.oracleFrontier[i]!.falseAlarms).toBeGreaterThan(g.oracleFrontier[i - 1]!.falseAlarms);
      }
      const text = formatSelection(grouped);
      expect(text).toContain("a ratio rule that knows each account's behaviour");
      for (const name of g.names) expect(text).toContain(`| ${name} |`);
    });
  });
});

describe('selection by order-flow trait', () => {
  let plain: SelectionResult;
  let flow: SelectionResult;
  beforeAll(async () => {
    // a pd that varies by row, so that the model's settings differ from the rule's
    const scorer: PdScorer = {
      info: {} as PdScorer['info'],
      score: async (_m, rows) => {
        const out = new Float32Array(rows);
        for (let r = 0; r < rows; r++) out[r] = r % 3 === 0 ? 0.5 : 0.01;
        return out;
      },
      explain: async () => [],
      close: async () => {},
    };
    plain = await runSelection({ ...base, scorer });
    flow = await runSelection({ ...base, scorer, byFlow: true });
  }, 120_000);

  it('leaves every setting as it was', () => {
    expect(flow.points).toEqual(plain.points);
    expect(flow.own).toEqual(plain.own);
    expect(plain.flow).toBeUndefined();
    expect(flow.flow!.traits.map((t) => t.name)).toEqual(['adds', 'cuts', 'withdraws', 'cancels']);
  });

  it('with the same threshold either side a trait rule is the plain rule, and never alerts at 0 / 0', () => {
    const thresholds = [0, ...base.ratioThresholds];
    for (const t of flow.flow!.traits) {
      expect(t.points).toHaveLength(thresholds.length ** 2);
      expect(t.looksWith).toBeLessThanOrEqual(flow.reference.looks);
      for (const th of base.ratioThresholds) {
        const p = t.points.find((x) => x.without === th && x.with === th)!;
        const rule = byLabel(flow, `ratio<${th}`);
        expect([p.alerted, p.falseAlarms, p.badDebtInTime], `${t.name} ${th}`).toEqual([
          rule.alerted,
          rule.falseAlarms,
          rule.badDebtInTime,
        ]);
      }
      const none = t.points.find((x) => x.without === 0 && x.with === 0)!;
      expect(none.alerted).toBe(0);
      // raising either threshold never alerts fewer
      for (const p of t.points)
        for (const q of t.points)
          if (q.without >= p.without && q.with >= p.with) expect(q.alerted).toBeGreaterThanOrEqual(p.alerted);
    }
    // some trait is shown at some look on this day, so some pair differs from both plain thresholds
    expect(flow.flow!.traits.some((t) => t.looksWith > 0)).toBe(true);
    expect(formatSelection(flow)).toContain('- adds (');
  });
});

describe('groupRuleFrontier: the Pareto set of every per-group choice of threshold', () => {
  it('equals the frontier of all combinations listed one by one', () => {
    const counts = fc.record({
      alerted: fc.constant(0),
      falseAlarms: fc.integer({ min: 0, max: 30 }),
      badDebtInTime: fc.integer({ min: 0, max: 1000 }),
    });
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 4 }).chain((groups) =>
          fc.array(fc.array(counts, { minLength: groups, maxLength: groups }), {
            minLength: 1,
            maxLength: 3,
          }),
        ),
        (table) => {
          const groups = table[0]!.length;
          const settings = table.map((c, k) => ({ threshold: k + 1, counts: c }));
          const total = 5000;
          const all: { avoided: number; falseAlarms: number; threshold: number }[] = [];
          const walk = (g: number, fa: number, bad: number) => {
            if (g === groups) {
              all.push({ avoided: bad / total, falseAlarms: fa, threshold: 0 });
              return;
            }
            walk(g + 1, fa, bad);
            for (const s of settings)
              walk(g + 1, fa + s.counts[g]!.falseAlarms, bad + s.counts[g]!.badDebtInTime);
          };
          walk(0, 0, 0);
          const got = groupRuleFrontier(groups, settings, total);
          const want = paretoFrontier(all);
          expect(got.map((p) => [p.avoided, p.falseAlarms])).toEqual(
            want.map((p) => [p.avoided, p.falseAlarms]),
          );
          for (const p of got) expect(p.thresholds).toHaveLength(groups);
        },
      ),
      { numRuns: 200 },
    );
  });
});
