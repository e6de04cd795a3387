import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { evaluationText, parseWindow } from '../../src/cli/commands/evaluate.js';
import { readCompatibleMetadata } from '../../src/model/artifacts.js';
import { byPeriod, evaluateModel, outsideWindows, pdBands } from '../../training/evaluate-model.js';
import type { SplitMatrix } from '../../training/splits.js';
import { runTraining } from '../../training/train.js';
import { useSimHistories } from '../helpers/sim-history.js';

describe('pdBands', () => {
  it('puts each pd in its band, 1 in the last, with mean pd and observed rate', () => {
    const bands = pdBands([0, 0.004, 0.015, 0.2, 1, 1], [0, 1, 0, 1, 1, 0], [0, 0.01, 0.2, 1]);
    expect(bands.map((b) => b.rows)).toEqual([2, 1, 3]);
    expect(bands[0]?.meanPd).toBeCloseTo(0.002, 12);
    expect(bands[0]?.observed).toBe(0.5);
    expect(bands[2]?.meanPd).toBeCloseTo(2.2 / 3, 12);
    expect(bands[2]?.observed).toBeCloseTo(2 / 3, 12);
    expect(pdBands([], [], [0, 1])[0]).toEqual({ lo: 0, hi: 1, rows: 0, meanPd: null, observed: null });
  });
});

describe('calibration over time', () => {
  it('sums observed and expected defaults per period, periods in time order', () => {
    const H = 3_600_000;
    const ts = Float64Array.from([2 * H + 5, 0, H - 1, 2 * H, H * 2 + 10]);
    const rows = byPeriod(
      ts,
      [1, 0, 1, 0, 1],
      { model: [0.5, 0.1, 0.2, 0.25, 0.05], rule: [1, 0, 0, 0, 0] },
      H,
    );
    expect(rows.map((r) => [r.startMs, r.rows, r.observed])).toEqual([
      [0, 2, 1],
      [2 * H, 3, 2],
    ]);
    expect(rows[0]?.expected.model).toBeCloseTo(0.3, 12);
    expect(rows[1]?.expected.model).toBeCloseTo(0.8, 12);
    expect(rows[1]?.expected.rule).toBe(1);
    expect(() => byPeriod(ts, [], {}, 0)).toThrow(/not positive/);
  });

  it('leaves out the rows of the excluded windows, [from, to), and keeps the others whole', () => {
    const m: SplitMatrix = {
      x: Float32Array.from([0, 1, 10, 11, 20, 21, 30, 31]),
      y: Float32Array.from([0, 1, 1, 0]),
      ts: Float64Array.from([100, 200, 300, 400]),
      account: Uint32Array.from([7, 8, 9, 7]),
      unseen: Uint8Array.from([0, 1, 0, 1]),
      rows: 4,
      cols: 2,
    };
    const { rows, keep } = outsideWindows(m, [
      { fromMs: 200, toMs: 300 },
      { fromMs: 400, toMs: 401 },
    ]);
    expect([...keep]).toEqual([0, 2]);
    expect([...rows.x]).toEqual([0, 1, 20, 21]);
    expect([...rows.y]).toEqual([0, 1]);
    expect([...rows.account]).toEqual([7, 9]);
    expect(rows.rows).toBe(2);
  });

  it('parses --exclude windows and refuses malformed ones', () => {
    const w = parseWindow('2020-03-12T09:00Z..2020-03-12T11:00Z');
    expect(w).toEqual([{ fromMs: Date.UTC(2020, 2, 12, 9), toMs: Date.UTC(2020, 2, 12, 11) }]);
    expect(parseWindow('5..9', w)).toEqual([...w, { fromMs: 5, toMs: 9 }]);
    expect(() => parseWindow('2020-03-12T09:00Z')).toThrow(/not a window/);
    expect(() => parseWindow('9..5')).toThrow(/ends before/);
    expect(() => parseWindow('x..2020-03-12T11:00Z')).toThrow(/not a window/);
  });
});

describe('preempt evaluate', () => {
  const { dir, files } = useSimHistories('evaluate-model');

  it('reproduces the held-out metrics training recorded, for the model and both stored baselines', async () => {
    const out = join(dir, 'model');
    const held = files['black-thursday-2020'] as string;
    await runTraining({
      events: [files['may-2021'] as string, files['flash-crash'] as string],
      validate: [held],
      out,
      epochs: 1,
      seed: 7,
    });
    const meta = await readCompatibleMetadata(out);
    const e = await evaluateModel({ model: out, events: [held] });
    expect(e.rows).toBe(meta.data.rows.test);
    // the model and the margin rule are scored exactly as training scored them
    expect(e.metrics.model).toEqual(meta.metrics.model);
    expect(e.metrics['margin-rule']).toEqual(meta.metrics.baselines['margin-rule']);
    // the logistic baseline from its stored weights, in float64 rather than TF.js float32
    const logistic = meta.metrics.baselines.logistic as Record<string, number | null>;
    for (const k of ['rocAuc', 'prAuc', 'brier', 'ece', 'eceEqualMass', 'recallAt5pct'])
      expect(e.metrics.logistic?.[k]).toBeCloseTo(logistic[k] as number, 3);
    expect(meta.metrics.model.eceEqualMass).toBeGreaterThan(0);
    // the bands hold every row and every default
    for (const bands of Object.values(e.reliability)) {
      expect(bands.reduce((s, b) => s + b.rows, 0)).toBe(e.rows);
      expect(bands.reduce((s, b) => s + b.rows * (b.observed ?? 0), 0)).toBeCloseTo(e.positives, 6);
    }
    // calibration over time holds every row and default, and each scorer's expected defaults are its pds' sum
    expect(e.byPeriod.reduce((s, p) => s + p.rows, 0)).toBe(e.rows);
    expect(e.byPeriod.reduce((s, p) => s + p.observed, 0)).toBe(e.positives);
    const modelBands = e.reliability.model ?? [];
    const pdSum = modelBands.reduce((s, b) => s + b.rows * (b.meanPd ?? 0), 0);
    expect(e.byPeriod.reduce((s, p) => s + (p.expected.model ?? 0), 0)).toBeCloseTo(pdSum, 3);
    // without its first hour: the metrics of the other rows only
    const first = e.byPeriod[0] as (typeof e.byPeriod)[number];
    const w = { fromMs: first.startMs, toMs: first.startMs + e.periodMs };
    const rest = await evaluateModel({ model: out, events: [held], exclude: [w] });
    expect(rest.outside?.rows).toBe(e.rows - first.rows);
    expect(rest.outside?.positives).toBe(e.positives - first.observed);
    expect(rest.outside?.metrics.model?.rows).toBe(e.rows - first.rows);
    expect(evaluationText(rest)).toContain(
      `without the rows of ${new Date(w.fromMs).toISOString().replace(':00.000Z', 'Z')}`,
    );
    const text = evaluationText(e);
    expect(text).toContain('defaults expected (sum of pd) against');
    expect(text).toContain(`${e.rows} rows (${e.positives} liquidated within the horizon)`);
    expect(text).toMatch(/\| model \| 0\.\d{3} \|/);
    expect(text).toContain('| logistic |');
  }, 300_000);

  it('refuses an empty list of histories', async () => {
    await expect(evaluateModel({ model: 'models/default', events: [] })).rejects.toThrow(/no history/);
  });
});
