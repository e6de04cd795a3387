import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { type AccountsOptions, accountsCommand, parseAt, register } from '../src/cli/commands/accounts.js';
import { testTempDir } from './helpers/temp-dir.js';

const SPEC_EXAMPLE = join(import.meta.dirname, 'fixtures/spec-example.jsonl');

async function runAccounts(opts: AccountsOptions): Promise<{ code: number; out: string; err: string }> {
  const out = new PassThrough();
  const err = new PassThrough();
  const chunks: string[] = [];
  const errs: string[] = [];
  out.on('data', (c) => chunks.push(String(c)));
  err.on('data', (c) => errs.push(String(c)));
  const code = await accountsCommand(opts, out, err);
  return { code, out: chunks.join(''), err: errs.join('') };
}

describe('preempt accounts', () => {
  it('JSON: one object per line; at the mark of 6950 the spec account is LIQUIDATE', async () => {
    const { code, out } = await runAccounts({ events: SPEC_EXAMPLE, at: '1584018000000', format: 'json' });
    expect(code).toBe(0);
    const lines = out.trim().split('\n');
    expect(lines).toHaveLength(1);
    const row = JSON.parse(lines[0]!);
    expect(row.account).toBe('a-17');
    expect(row.equity).toBeCloseTo(91.68, 9);
    expect(row.mm).toBeCloseTo(139, 9);
    expect(row.positions[0]).toMatchObject({ qty: 2, avgEntry: 7901, notional: 13900, tierIndex: 0 });
    expect(row.positions[0].liquidationPrice).toBeCloseTo(13_808.32 / 1.98, 6);
    expect(row.decision).toMatchObject({ action: 'LIQUIDATE', rule: 'equity-below-mm', rulesOnly: true });
  });

  it('JSON: after the liquidation, no position and a null margin ratio (not Infinity)', async () => {
    const { out } = await runAccounts({ events: SPEC_EXAMPLE, format: 'json' });
    const row = JSON.parse(out.trim());
    expect(row.cash).toBeCloseTo(2.28, 9);
    expect(row.marginRatio).toBeNull();
    expect(row.positions).toEqual([]);
    expect(row.decision.action).toBe('HEALTHY');
  });

  it('table: cash, equity, MM, IM, ratio, decision and the position line', async () => {
    const { code, out } = await runAccounts({ events: SPEC_EXAMPLE, at: '2020-03-12T13:00:00Z' });
    expect(code).toBe(0);
    expect(out).toMatch(/a-17\s+1993\.68\s+91\.68\s+139\.00\s+278\.00\s+0\.660\s+LIQUIDATE/);
    expect(out).toMatch(
      /BTC-PERP\s+qty 2\.0000 entry 7901\.00 mark 6950\.00 notional 13900\.00 tier 0 liq 6973\.90/,
    );
  });

  it('before any account event there is no account to print', async () => {
    const { out } = await runAccounts({ events: SPEC_EXAMPLE, at: '1583971200000', format: 'json' });
    expect(out).toBe('');
  });

  it('reports an event the margin core rejects with its line, and exits 1', async () => {
    const dir = testTempDir('accounts');
    const file = join(dir, 'bad.jsonl');
    writeFileSync(
      file,
      [
        '{"type":"instrument","ts":1,"symbol":"X","base":"X","tiers":[{"maxNotional":null,"imr":0.1,"mmr":0.05}]}',
        '{"type":"bankruptcy","ts":2,"account":"ghost","deficit":5}',
      ].join('\n'),
    );
    const { code, err } = await runAccounts({ events: file, format: 'json' });
    expect(code).toBe(1);
    expect(err).toContain('line 2: UNKNOWN_ACCOUNT');
    expect((await runAccounts({ events: SPEC_EXAMPLE, format: 'csv' })).code).toBe(1);
  });

  it('parses --at as epoch ms or ISO-8601, and registers the subcommand', () => {
    expect(parseAt('1584018000000')).toBe(1584018000000);
    expect(parseAt('2020-03-12T13:00:00Z')).toBe(1584018000000);
    expect(parseAt(undefined)).toBe(Number.POSITIVE_INFINITY);
    expect(() => parseAt('yesterday')).toThrow(/--at/);
    const program = new Command();
    register(program);
    expect(program.commands.map((c) => c.name())).toContain('accounts');
  });
});
