import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { preempt } from './helpers/preempt-cli.js';
import { testTempDir } from './helpers/temp-dir.js';

const SPEC_EXAMPLE = join(import.meta.dirname, 'fixtures/spec-example.jsonl');

describe('preempt CLI', () => {
  it('--help lists the subcommands', async () => {
    const { code, stdout } = await preempt('--help');
    expect(code).toBe(0);
    expect(stdout).toMatch(/validate/);
    expect(stdout).toMatch(/start/);
  });

  it("validate counts the spec example's 7 valid events", async () => {
    const { code, stdout } = await preempt('validate', SPEC_EXAMPLE);
    expect(code).toBe(0);
    expect(stdout).toMatch(/valid\s+7/);
    expect(stdout).toMatch(/mark\s+2/);
  });

  it('validate names the line and field of a bad line and exits non-zero', async () => {
    const dir = testTempDir('cli');
    const bad = join(dir, 'bad.jsonl');
    writeFileSync(
      bad,
      [
        '{"type":"instrument","ts":1,"symbol":"X","base":"X","tiers":[{"maxNotional":null,"imr":0.1,"mmr":0.05}]}',
        '{"type":"deposit","ts":2,"account":"a","amount":5}',
        '{"type":"mark","ts":3,"symbol":"X","price":-1}',
      ].join('\n'),
    );
    const { code, stderr } = await preempt('validate', bad);
    expect(code).toBe(1);
    expect(stderr).toContain('line 3: field price: must be > 0');
    const skipped = await preempt('validate', '--skip-invalid', '--json', bad);
    expect(skipped.code).toBe(0);
    expect(JSON.parse(skipped.stdout)).toMatchObject({ valid: 2, skipped: 1 });
  });

  it('train refuses an unknown calibration method or weighting before reading anything', async () => {
    const out = join(testTempDir('cli'), 'never');
    const method = await preempt('train', '--events', SPEC_EXAMPLE, '--out', out, '--calibration', 'beta');
    expect(method.code).not.toBe(0);
    expect(method.stderr).toMatch(/--calibration <method>.*expected platt, isotonic or auto, got "beta"/);
    const weighting = await preempt(
      'train',
      '--events',
      SPEC_EXAMPLE,
      '--out',
      out,
      '--calibration-weighting',
      'days',
    );
    expect(weighting.code).not.toBe(0);
    expect(weighting.stderr).toMatch(/expected rows or histories, got "days"/);
    expect(existsSync(out)).toBe(false);
  });
});

describe('preempt train options', () => {
  it('refuses --epochs below 1 or above 1000 and malformed --hidden when parsing the options', async () => {
    const out = join(testTempDir('cli'), 'never');
    for (const epochs of ['0', '-3']) {
      const r = await preempt('train', '--events', SPEC_EXAMPLE, '--out', out, '--epochs', epochs);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain(`--epochs <n>' argument '${epochs}' is invalid`);
      expect(r.stderr).toContain(`expected a number of epochs from 1 to 1000, got "${epochs}"`);
    }
    for (const hidden of ['abc', '32,,16']) {
      const r = await preempt('train', '--events', SPEC_EXAMPLE, '--out', out, '--hidden', hidden);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain(
        `expected comma-separated positive layer sizes, e.g. 32,16, got "${hidden}"`,
      );
      expect(r.stderr).not.toContain('ZodError');
    }
    expect(existsSync(out)).toBe(false);
  });

  it('refuses an --out it cannot write before reading any history', async () => {
    const dir = testTempDir('cli');
    const file = join(dir, 'a-file');
    writeFileSync(file, 'x');
    const r = await preempt('train', '--events', join(dir, 'missing.jsonl'), '--out', join(file, 'model'));
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(
      /cannot write the model to .*a-file\/model: cannot create its parent directory .*a-file is not a directory/,
    );
    expect(r.stderr).not.toContain('missing.jsonl');
  });
});
