import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { Command } from 'commander';
import { afterAll, describe, expect, it } from 'vitest';
import { register, runSimulate } from '../../src/cli/commands/simulate.js';
import { emptyStats, readEventsFile } from '../../src/events/reader.js';

const dir = mkdtempSync(join(tmpdir(), 'preempt-sim-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function capture(): { stream: PassThrough; text: () => string } {
  const stream = new PassThrough();
  let buf = '';
  stream.on('data', (d: Buffer) => {
    buf += d.toString();
  });
  return { stream, text: () => buf };
}

describe('preempt simulate', () => {
  it('writes a gzip history and prints the summary; progress goes to stderr', async () => {
    const out = capture();
    const err = capture();
    const file = join(dir, 'run.jsonl.gz');
    const summary = await runSimulate(
      { scenario: 'flash-crash', accounts: '60', seed: '2', out: file },
      out.stream,
      err.stream,
    );
    expect(out.text()).toMatch(/accounts\s+60/);
    expect(out.text()).toMatch(/liquidations\s+\d+ events, \d+ accounts/);
    expect(out.text()).toMatch(/bad debt\s+\$/);
    expect(out.text()).toMatch(/insurance fund\s+\$15,000 -> \$/);
    expect(err.text()).toMatch(/simulate .*minute/);
    const stats = emptyStats();
    for await (const _ of readEventsFile(file, stats)) {
      // counting
    }
    expect(stats.valid).toBe(summary.events);
    expect(statSync(file).size).toBeGreaterThan(1000);
  });

  it('--json prints the summary object; a bad --accounts is refused before anything is written', async () => {
    const out = capture();
    const file = join(dir, 'j.jsonl');
    await runSimulate(
      { scenario: 'flash-crash', accounts: '20', seed: '1', out: file, json: true, progress: false },
      out.stream,
    );
    const s = JSON.parse(out.text()) as { accounts: number; events: number };
    expect(s.accounts).toBe(20);
    expect(s.events).toBeGreaterThan(0);
    await expect(
      runSimulate({ scenario: 'flash-crash', accounts: 'ten', seed: '1', out: join(dir, 'never.jsonl') }),
    ).rejects.toThrow(/--accounts must be an integer >= 1/);
    expect(() => statSync(join(dir, 'never.jsonl'))).toThrow();
  });

  it('registers the subcommand with its options', () => {
    const program = new Command('preempt');
    register(program);
    const cmd = program.commands.find((c) => c.name() === 'simulate');
    expect(cmd?.options.map((o) => o.long)).toEqual(
      expect.arrayContaining(['--scenario', '--accounts', '--seed', '--out']),
    );
  });
});
