/**
 * `preempt backtest` refuses what it cannot honour before any run, and writes its report files all together.
 */
import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { checkOutDir, nearestExisting, replaceFilesIn } from '../../src/cli/atomic-file.js';
import { parsePolicyConfig } from '../../src/cli/commands/backtest.js';
import { resolvePolicyConfig } from '../../src/margin/index.js';
import { preempt } from '../helpers/preempt-cli.js';

const dir = mkdtempSync(join(tmpdir(), 'preempt-bt-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('the policy config', () => {
  it('refuses a misspelt field (the default would stay in force unseen), a non-object and bad JSON', () => {
    expect(() => parsePolicyConfig('{"pdReduc":0.1}')).toThrow(/--policy-config: .*no field "pdReduc"/);
    expect(() => resolvePolicyConfig({ pdReduc: 0.1 } as never)).toThrow(/no field "pdReduc"/);
    for (const text of ['null', '5', '[1]'])
      expect(() => parsePolicyConfig(text)).toThrow(/--policy-config: .*must be an object/);
    expect(() => parsePolicyConfig('{pdReduce:0.1}')).toThrow(/--policy-config: not JSON/);
    expect(() => parsePolicyConfig('{"pdReduce":2}')).toThrow(/--policy-config: .*pdReduce/);
    expect(parsePolicyConfig('{"pdReduce":0.1}')).toEqual({ pdReduce: 0.1 });
  });
});

describe('the report directory', () => {
  it('gets its files all together, leaves other files and subdirectories alone, and keeps the old files on failure', async () => {
    const out = join(dir, 'day');
    mkdirSync(join(out, 'sweep'), { recursive: true });
    writeFileSync(join(out, 'report.json'), 'old');
    writeFileSync(join(out, 'report.md'), 'old');
    writeFileSync(join(out, 'sweep', 'sweep.json'), 'kept');
    await expect(
      replaceFilesIn(out, async (staging) => {
        writeFileSync(join(staging, 'report.json'), 'new');
        throw new Error('ENOSPC: no space left on device');
      }),
    ).rejects.toThrow(/ENOSPC/);
    expect(readFileSync(join(out, 'report.json'), 'utf8')).toBe('old');
    expect(readdirSync(out).sort()).toEqual(['report.json', 'report.md', 'sweep']);
    await replaceFilesIn(out, async (staging) => {
      writeFileSync(join(staging, 'report.json'), 'new');
      writeFileSync(join(staging, 'report.md'), 'new');
    });
    expect(readFileSync(join(out, 'report.json'), 'utf8')).toBe('new');
    expect(readFileSync(join(out, 'report.md'), 'utf8')).toBe('new');
    expect(readFileSync(join(out, 'sweep', 'sweep.json'), 'utf8')).toBe('kept');
    expect(readdirSync(out).sort()).toEqual(['report.json', 'report.md', 'sweep']);
  });

  it('is checked before the run: a file, or a path under a file, is refused naming --out', async () => {
    const file = join(dir, 'a-file');
    writeFileSync(file, 'x');
    await expect(checkOutDir(file)).rejects.toThrow(/--out .*a-file: exists and is not a directory/);
    await expect(checkOutDir(join(file, 'sub'))).rejects.toThrow(/a-file is not a directory/);
    await expect(checkOutDir(join(dir, 'new', 'deeper'))).resolves.toBeUndefined();
    // a symbolic-link loop is named, not walked past to the writable directory above it
    const loop = join(dir, 'loop');
    symlinkSync(loop, loop);
    await expect(checkOutDir(join(loop, 'out'))).rejects.toThrow(/--out .*loop.*ELOOP/);
    const r = await preempt(
      'backtest',
      '--scenario',
      'flash-crash',
      '--accounts',
      '30',
      '--out',
      file,
      '--no-progress',
    );
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/--out .*exists and is not a directory/);
    expect(r.stdout).toBe(''); // no table: nothing ran
  }, 60_000);

  it('walks up to the nearest existing ancestor, past what the caller accepts (training: a missing path only)', async () => {
    const base = join(dir, 'walk');
    mkdirSync(base);
    const file = join(base, 'a-file');
    writeFileSync(file, 'x');
    // missing paths: up to the nearest that exists
    const up = await nearestExisting(join(base, 'x', 'y', 'z'));
    expect(up.path).toBe(base);
    expect(up.stats.isDirectory()).toBe(true);
    // a path under a file: by default walked past (checkOutDir names the file), ENOTDIR otherwise
    const underFile = await nearestExisting(join(file, 'sub', 'deeper'));
    expect(underFile.path).toBe(file);
    expect(underFile.stats.isFile()).toBe(true);
    const enoent = (e: unknown) => (e as NodeJS.ErrnoException).code === 'ENOENT';
    await expect(nearestExisting(join(file, 'sub', 'deeper'), enoent)).rejects.toMatchObject({
      code: 'ENOTDIR',
    });
    await expect(nearestExisting(join(file, 'sub'), enoent)).rejects.toMatchObject({ code: 'ENOTDIR' });
    // symbolic links are followed, a dangling one is missing; the path found is the link's, not its target's
    const link = join(base, 'link');
    symlinkSync(join(base, 'x'), link);
    expect((await nearestExisting(join(link, 'new'), enoent)).path).toBe(base);
    mkdirSync(join(base, 'x'));
    const followed = await nearestExisting(join(link, 'new'), enoent);
    expect(followed.path).toBe(link);
    expect(followed.stats.isDirectory()).toBe(true);
    expect((await nearestExisting('/')).path).toBe('/');
  });

  it('refuses a seed past 32 bits, a negative --late-minutes and --accounts below 1, naming the option', async () => {
    for (const [args, re] of [
      [['--seed', '4294967297'], /--seed: "4294967297" is not an integer from 0/],
      [['--late-minutes', '-5'], /--late-minutes: "-5"/],
      [['--accounts', '-5'], /--accounts: "-5"/],
      [['--policy-config', '{"pdReduc":0.1}'], /--policy-config: .*no field "pdReduc"/],
    ] as const) {
      const r = await preempt('backtest', '--scenario', 'flash-crash', ...args, '--no-progress');
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(re);
      expect(r.stdout).toBe('');
    }
  }, 60_000);

  it('--predictive-from refuses --pd-thresholds and --gates beside it, and a file that is not a sweep.json', async () => {
    const sweep = 'docs/backtests/aug-2023/sweep/sweep.json';
    const notSweep = join(dir, 'not-a-sweep.json');
    writeFileSync(notSweep, JSON.stringify({ scenario: 'aug-2023' }));
    for (const [args, re] of [
      [
        ['--pd-thresholds', '0.1'],
        /--predictive-from <sweep.json>' cannot be used with option '--pd-thresholds/,
      ],
      [['--gates', '5'], /--predictive-from <sweep.json>' cannot be used with option '--gates/],
    ] as const) {
      const r = await preempt(
        'backtest',
        '--scenario',
        'aug-2023',
        '--sweep',
        '--predictive-from',
        sweep,
        ...args,
      );
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(re);
      expect(r.stdout).toBe('');
    }
    const r = await preempt('backtest', '--scenario', 'aug-2023', '--sweep', '--predictive-from', notSweep);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/--predictive-from .*not-a-sweep\.json: not a sweep\.json: accounts/);
    expect(r.stdout).toBe('');
  }, 60_000);
});
