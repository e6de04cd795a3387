/**
 * What the CLI leaves behind when a run fails: output files are written all or nothing, a killed run exits as
 * killed, errors name the file and line, and times without an offset are refused rather than read as the
 * machine's local time.
 */
import { execFileSync, spawn } from 'node:child_process';
import {
  chmodSync,
  createReadStream,
  existsSync,
  lstatSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { replaceFilesIn, syncPath, writeAtomically } from '../src/cli/atomic-file.js';
import { parseAt } from '../src/cli/commands/accounts.js';
import { parseWindow } from '../src/cli/commands/evaluate.js';
import { parseAtMs } from '../src/cli/commands/features.js';
import { scoreHistory } from '../src/cli/commands/score-history.js';
import { parseDurationMs } from '../src/cli/duration.js';
import { emptyStats, readEventsFile } from '../src/events/reader.js';
import { instrument } from './features/builders.js';

const BIN = join(import.meta.dirname, '../bin/preempt.js');
const dir = mkdtempSync(join(tmpdir(), 'preempt-cli-outputs-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A history whose second line has a bad `ts`. */
function badHistory(name: string): string {
  const path = join(dir, name);
  writeFileSync(
    path,
    `${JSON.stringify(instrument(1, 'X-PERP'))}\n{"type":"mark","ts":"soon","symbol":"X-PERP","price":1}\n`,
  );
  return path;
}

describe('output files', () => {
  it('are replaced only when the writer succeeds, and leave no temporary file either way', async () => {
    const path = join(dir, 'out.csv');
    writeFileSync(path, 'previous\n');
    await expect(
      writeAtomically(path, async (tmp) => {
        writeFileSync(tmp, 'half');
        throw new Error('broke off');
      }),
    ).rejects.toThrow(/broke off/);
    expect(readFileSync(path, 'utf8')).toBe('previous\n');
    await writeAtomically(path, async (tmp) => writeFileSync(tmp, 'new\n'));
    expect(readFileSync(path, 'utf8')).toBe('new\n');
    expect(readdirSync(dir).filter((f) => f.includes('.tmp-'))).toEqual([]);
  });

  it('replace what a link points to (not the link), keep the mode, and write a FIFO or device directly', async () => {
    const real = join(dir, 'real.csv');
    writeFileSync(real, 'old\n');
    chmodSync(real, 0o640);
    const link = join(dir, 'latest.csv');
    symlinkSync(real, link);
    await writeAtomically(link, async (tmp) => writeFileSync(tmp, 'new\n'));
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
    expect(readFileSync(real, 'utf8')).toBe('new\n');
    expect(statSync(real).mode & 0o777).toBe(0o640);
    const fifo = join(dir, 'pipe');
    execFileSync('mkfifo', [fifo]);
    const got = new Promise<string>((resolve) => {
      let text = '';
      createReadStream(fifo, 'utf8')
        .on('data', (c) => {
          text += c;
        })
        .on('end', () => resolve(text));
    });
    await writeAtomically(fifo, async (path) => writeFileSync(path, 'through the pipe'));
    expect(await got).toBe('through the pipe');
    expect(statSync(fifo).isFIFO()).toBe(true);
  });

  it('are fsynced before they are renamed into place, and their directory after (a power loss keeps one whole)', async () => {
    // FileHandle is not exported: its prototype from a handle, to count the fsyncs the writers make
    const probe = await open(dir, 'r');
    const proto = Object.getPrototypeOf(probe) as { sync: () => Promise<void> };
    await probe.close();
    const sync = vi.spyOn(proto, 'sync');
    try {
      await writeAtomically(join(dir, 'synced.csv'), async (tmp) => writeFileSync(tmp, 'x\n'));
      expect(sync).toHaveBeenCalledTimes(2); // the file, then its directory
      sync.mockClear();
      await replaceFilesIn(join(dir, 'report'), async (staging) => {
        writeFileSync(join(staging, 'a.json'), '{}');
        writeFileSync(join(staging, 'b.md'), '#');
      });
      expect(sync).toHaveBeenCalledTimes(4); // two files, the staging directory, the directory
    } finally {
      sync.mockRestore();
    }
    await expect(syncPath(join(dir, 'not-there'))).rejects.toThrow(/ENOENT/);
  });

  it('score-history on a history that turns out bad leaves the previous CSV as it was', async () => {
    const csv = join(dir, 'scores.csv');
    writeFileSync(csv, 'ts,account,pd,marginRatio,action\n1,a,0.1,2,WATCH\n');
    await expect(
      scoreHistory({ events: badHistory('bad.jsonl'), model: 'models/default', every: 300_000, out: csv }),
    ).rejects.toThrow(/bad\.jsonl: line 2: field ts/);
    expect(readFileSync(csv, 'utf8')).toBe('ts,account,pd,marginRatio,action\n1,a,0.1,2,WATCH\n');
    expect(readdirSync(dir).filter((f) => f.includes('.tmp-'))).toEqual([]);
  }, 60_000);

  it('a bad event names its file as well as its line and field', async () => {
    const path = badHistory('named.jsonl');
    const read = async () => {
      for await (const _ of readEventsFile(path, emptyStats())) {
        // read to the end
      }
    };
    await expect(read()).rejects.toThrow(`${path}: line 2: field ts`);
  });
});

describe('a history that is not there', () => {
  it('rejects the read, and leaves no stream error unhandled (which took the process down)', async () => {
    const read = async () => {
      for await (const _ of readEventsFile(join(dir, 'missing.jsonl'), emptyStats())) {
        // nothing to read
      }
    };
    await expect(read()).rejects.toThrow(/ENOENT/);
    // an unhandled 'error' event would surface here, in the turns after the rejection
    await new Promise((r) => setTimeout(r, 100));
  });
});

describe('times on the command line', () => {
  it('durations are whole ms and at least a second', () => {
    expect(parseDurationMs('5m')).toBe(300_000);
    expect(parseDurationMs('300000')).toBe(300_000);
    expect(parseDurationMs('1.5s')).toBe(1500);
    expect(() => parseDurationMs('1.5')).toThrow(/whole number of ms/);
    expect(() => parseDurationMs('500')).toThrow(/shorter than a second/);
    expect(() => parseDurationMs('0.0001m')).toThrow(/shorter than a second/);
    expect(() => parseDurationMs('0.00001m')).toThrow(/whole number of ms/);
    expect(() => parseDurationMs('0')).toThrow(/longer than zero/);
  });

  it('need an offset when they have a time of day (no local time), and a date alone is UTC', () => {
    expect(parseAtMs('2020-03-12T09:00Z')).toBe(Date.UTC(2020, 2, 12, 9));
    expect(parseAtMs('2020-03-12T10:00+01:00')).toBe(Date.UTC(2020, 2, 12, 9));
    expect(parseAtMs('2020-03-12')).toBe(Date.UTC(2020, 2, 12));
    expect(parseAtMs('1584003600000')).toBe(1584003600000);
    expect(() => parseAtMs('2020-03-12T09:00')).toThrow(/no offset: add Z/);
    expect(() => parseAt('2020-03-12T09:00:00')).toThrow(/--at: .*no offset/);
    expect(() => parseWindow('2020-03-12T09:00..2020-03-12T11:00Z')).toThrow(/no offset/);
    expect(parseWindow('2020-03-12T09:00Z..2020-03-12T11:00+00:00')).toEqual([
      { fromMs: Date.UTC(2020, 2, 12, 9), toMs: Date.UTC(2020, 2, 12, 11) },
    ]);
    expect(() => parseAtMs('March 12')).toThrow(/not an ISO-8601 time/);
  });
});

describe('simulate', () => {
  it('refuses a seed past 32 bits (it would repeat a smaller seed under its own name)', async () => {
    const { runSimulate } = await import('../src/cli/commands/simulate.js');
    await expect(
      runSimulate({ scenario: 'flash-crash', accounts: '10', seed: '4294967297', out: join(dir, 's.jsonl') }),
    ).rejects.toThrow(/--seed must be an integer from 0 to 4294967295/);
    expect(existsSync(join(dir, 's.jsonl'))).toBe(false);
  });
});

describe('a killed run', () => {
  it('exits as killed (not 0), and leaves no output file that looks complete', async () => {
    const out = join(dir, 'killed.jsonl.gz');
    const child = spawn(
      process.execPath,
      [
        BIN,
        'simulate',
        '--scenario',
        'calm',
        '--accounts',
        '2000',
        '--seed',
        '1',
        '--out',
        out,
        '--no-progress',
      ],
      { stdio: 'ignore' },
    );
    setTimeout(() => child.kill('SIGTERM'), 2000);
    const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) =>
      child.on('exit', (c, s) => resolve([c, s])),
    );
    expect(code === 143 || signal === 'SIGTERM').toBe(true);
    expect(existsSync(out)).toBe(false);
  }, 60_000);
});
