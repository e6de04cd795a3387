import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { scoreHistory } from '../src/cli/commands/score-history.js';
import { FEATURE_SCHEMA_HASH } from '../src/features/schema.js';
import { readCompatibleMetadata } from '../src/model/artifacts.js';
import { readModelFiles } from '../src/model/model-files.js';
import { buildHistoryRows } from '../training/dataset.js';
import { evaluateModel } from '../training/evaluate-model.js';
import { runTraining } from '../training/train.js';
import { useSimHistories } from './helpers/sim-history.js';

const { dir, files } = useSimHistories('training');

describe('the training job', () => {
  it('trains on simulated histories, validates on another crash day and writes a complete model directory', async () => {
    const out = join(dir, 'model');
    const phases = new Set<string>();
    const result = await runTraining({
      events: [files['may-2021'] as string, files['flash-crash'] as string],
      validate: [files['black-thursday-2020'] as string],
      out,
      epochs: 2,
      seed: 5,
      onProgress: (p) => phases.add(p.phase),
    });
    expect([...phases]).toEqual(expect.arrayContaining(['read', 'fit', 'evaluate', 'report']));
    const files_ = readdirSync(out);
    for (const f of [
      'model.json',
      'weights.bin',
      'metadata.json',
      'report.md',
      'roc.svg',
      'pr.svg',
      'reliability.svg',
      'importance.svg',
      'baselines.svg',
    ])
      expect(files_).toContain(f);
    const meta = await readCompatibleMetadata(out);
    expect(meta.featureSchema.hash).toBe(FEATURE_SCHEMA_HASH);
    expect(meta.metrics.split).toContain('black-thursday-2020');
    expect(meta.data.rows.test).toBeGreaterThan(0);
    expect(meta.data.fingerprint).toMatch(/^[0-9a-f]{64}$/);
    for (const m of [meta.metrics.model, ...Object.values(meta.metrics.baselines)]) {
      expect(m.rocAuc).toBeGreaterThan(0);
      expect(m.rocAuc).toBeLessThanOrEqual(1);
      expect(m.brier).toBeGreaterThanOrEqual(0);
    }
    expect(Object.keys(meta.metrics.baselines).sort()).toEqual(['logistic', 'margin-rule']);
    expect(readFileSync(join(out, 'report.md'), 'utf8')).toContain('baseline: margin-rule');
    expect(result.metadata.createdAt).toBe(meta.createdAt);
    // the two-stage score and the negative sampling are recorded with the model
    expect(meta.stack?.features).toEqual(['liq_dist_sigma']);
    expect(meta.training.negativeSample).toBe(0.3);
    expect(meta.data.rows.train).toBeLessThan(meta.data.rows.trainBeforeSampling as number);
    // the metadata (written twice, the second time without the network) records the network's files as saved
    const sha256 = (f: string) =>
      `sha256:${createHash('sha256')
        .update(readFileSync(join(out, f)))
        .digest('hex')}`;
    expect(meta.digests).toEqual({
      'model.json': sha256('model.json'),
      'weights.bin': sha256('weights.bin'),
    });
    expect(result.metadata.digests).toEqual(meta.digests);
    expect((await readModelFiles(out)).verified).toBe(true);

    // the same seed trains the same weights
    const again = join(dir, 'model-again');
    await runTraining({
      events: [files['may-2021'] as string, files['flash-crash'] as string],
      validate: [files['black-thursday-2020'] as string],
      out: again,
      epochs: 2,
      seed: 5,
    });
    expect(readFileSync(join(again, 'weights.bin')).equals(readFileSync(join(out, 'weights.bin')))).toBe(
      true,
    );
  }, 300_000);

  it('trains on the rows below a margin ratio only when asked, and records it with the model', async () => {
    const out = join(dir, 'gated');
    await expect(
      runTraining({ events: [files['may-2021'] as string], out, maxMarginRatio: 1 }),
    ).rejects.toThrow(/largest margin ratio must be a number above 1, got 1/);
    await runTraining({
      events: [files['may-2021'] as string, files['flash-crash'] as string],
      validate: [files['black-thursday-2020'] as string],
      out,
      epochs: 1,
      seed: 5,
      maxMarginRatio: 5,
    });
    const meta = await readCompatibleMetadata(out);
    expect(meta.rows).toEqual({ maxMarginRatio: 5 });
    const opts = { everyMs: meta.everyMs, horizonMs: meta.horizonMs };
    const all = await buildHistoryRows(files['black-thursday-2020'] as string, opts);
    const below = await buildHistoryRows(files['black-thursday-2020'] as string, {
      ...opts,
      maxMarginRatio: 5,
    });
    expect(meta.data.rows.test).toBe(below.rows);
    expect(below.rows).toBeGreaterThan(0);
    expect(below.rows).toBeLessThan(all.rows);
    // evaluate judges it on the same rows, and reproduces what training recorded
    const e = await evaluateModel({ model: out, events: [files['black-thursday-2020'] as string] });
    expect(e.rows).toBe(below.rows);
    expect(e.metrics.model).toEqual(meta.metrics.model);
  }, 300_000);

  it('refuses histories without defaults in a split, saying why', async () => {
    await expect(
      runTraining({
        events: [files['flash-crash'] as string],
        out: join(dir, 'none'),
        epochs: 1,
        horizonMs: 60_000,
        everyMs: 3_600_000,
      }),
    ).rejects.toThrow(/split has \d+ rows and 0 defaults/);
  }, 120_000);

  it('score-history writes ts,account,pd,marginRatio,action for accounts with a position at every step', async () => {
    const model = join(dir, 'model');
    const csv = join(dir, 'scores.csv');
    const { rows, snapshots } = await scoreHistory({
      events: files['black-thursday-2020'] as string,
      model,
      every: 300_000,
      out: csv,
    });
    const lines = readFileSync(csv, 'utf8').trim().split('\n');
    expect(lines[0]).toBe('ts,account,pd,marginRatio,action');
    expect(lines.length - 1).toBe(rows);
    expect(rows).toBeGreaterThan(snapshots); // many accounts per step
    const actions = new Set<string>();
    for (const line of lines.slice(1)) {
      const [ts, account, pd, ratio, action] = line.split(',');
      expect(Number(ts) % 300_000).toBe(0);
      expect(account?.length).toBeGreaterThan(0);
      expect(Number(pd)).toBeGreaterThanOrEqual(0);
      expect(Number(pd)).toBeLessThanOrEqual(1);
      actions.add(action as string);
      // liquidation is the margin rule, whatever the pd
      if (Number(ratio) < 1) expect(action).toBe('LIQUIDATE');
      if (action === 'LIQUIDATE') expect(Number(ratio)).toBeLessThan(1);
    }
    for (const a of actions) expect(['LIQUIDATE', 'REDUCE', 'WATCH', 'HEALTHY']).toContain(a);
  }, 120_000);
});
