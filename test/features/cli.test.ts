import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { afterAll, describe, expect, it } from 'vitest';
import { parseAtMs, register, writeFeaturesCsv } from '../../src/cli/commands/features.js';
import { csvField, float32Text } from '../../src/features/csv.js';
import { FeaturePipeline } from '../../src/features/pipeline.js';
import { F, FEATURE_COUNT, FEATURE_NAMES } from '../../src/features/schema.js';
import { MIN, T0 } from './builders.js';
import { syntheticHistory } from './synthetic-history.js';

const dir = mkdtempSync(join(tmpdir(), 'preempt-features-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const history = syntheticHistory({ seed: 5, accounts: 8, minutes: 30 });
const eventsFile = join(dir, 'history.jsonl');
writeFileSync(eventsFile, `${history.map((e) => JSON.stringify(e)).join('\n')}\n`);

function parseCsv(text: string): string[][] {
  return text
    .trimEnd()
    .split('\n')
    .map((l) => l.split(','));
}

describe('preempt features', () => {
  it('writes the snapshot at --at with a header of account + schema names, values as in the pipeline', async () => {
    const at = T0 + 20 * MIN + 123;
    const out = join(dir, 'f.csv');
    const { rows, stats } = await writeFeaturesCsv({ events: eventsFile, at, out });
    const lines = parseCsv(readFileSync(out, 'utf8'));
    expect(lines[0]).toEqual(['account', ...FEATURE_NAMES]);
    expect(lines.length - 1).toBe(rows);
    expect(stats.applied).toBe(history.filter((e) => e.ts <= at).length);
    const p = new FeaturePipeline();
    for (const e of history) if (e.ts <= at) p.apply(e);
    const snap = p.snapshot(at);
    expect(lines.slice(1).map((l) => l[0])).toEqual(snap.accounts);
    lines.slice(1).forEach((l, r) => {
      expect(l.length).toBe(FEATURE_COUNT + 1);
      l.slice(1).forEach((text, c) => {
        expect(Math.fround(Number(text))).toBe(snap.matrix[r * FEATURE_COUNT + c]);
      });
    });
  });

  it('runs through commander with --only-open and an ISO time', async () => {
    const program = new Command().exitOverride();
    register(program);
    const out = join(dir, 'open.csv');
    const at = new Date(T0 + 25 * MIN).toISOString();
    await program.parseAsync([
      'node',
      'preempt',
      'features',
      '--events',
      eventsFile,
      '--at',
      at,
      '--out',
      out,
      '--only-open',
    ]);
    const lines = parseCsv(readFileSync(out, 'utf8'));
    expect(lines.length).toBeGreaterThan(1);
    for (const l of lines.slice(1)) expect(l[1 + F.has_position]).toBe('1');
  });

  it('refuses a bad --at', () => {
    expect(() => parseAtMs('yesterday-ish')).toThrow(/not an ISO-8601 time .*or epoch ms/);
    expect(parseAtMs('1700000000000')).toBe(1_700_000_000_000);
  });

  it('formats fields: quotes when needed, shortest float32 text', () => {
    expect(csvField('a,b')).toBe('"a,b"');
    expect(csvField('say "hi"')).toBe('"say ""hi"""');
    expect(csvField('plain')).toBe('plain');
    expect(float32Text(Math.fround(0.1))).toBe('0.1');
    expect(float32Text(1)).toBe('1');
    const v = Math.fround(Math.PI);
    expect(Math.fround(Number(float32Text(v)))).toBe(v);
  });
});
