import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { evaluationText } from '../../src/cli/commands/evaluate.js';
import { readCompatibleMetadata } from '../../src/model/artifacts.js';
import { evaluateModel, pdBands } from '../../training/evaluate-model.js';
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
    const text = evaluationText(e);
    expect(text).toContain(`${e.rows} rows (${e.positives} liquidated within the horizon)`);
    expect(text).toMatch(/\| model \| 0\.\d{3} \|/);
    expect(text).toContain('| logistic |');
  }, 300_000);

  it('refuses an empty list of histories', async () => {
    await expect(evaluateModel({ model: 'models/default', events: [] })).rejects.toThrow(/no history/);
  });
});
