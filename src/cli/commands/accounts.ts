/**
 * `preempt accounts --events FILE [--at TS] [--format json|table]`: replay a canonical history through
 * the margin core up to a time and print every account's margin state (cash, equity, MM, IM, margin
 * ratio, positions with entry, notional, tier and liquidation price) and the venue-rules decision
 * (no pd). JSON is one object per line; non-finite numbers (the margin ratio of an account without
 * position) are written as null.
 */

import type { Command } from 'commander';
import { parseTimeArg } from '../../events/iso-time.js';
import { readEventsFile } from '../../events/reader.js';
import { InvalidEventError } from '../../events/validate.js';
import {
  type AccountMargin,
  type Decision,
  decide,
  MarginBook,
  MarginRuleError,
} from '../../margin/index.js';

export interface AccountsOptions {
  events: string;
  /** epoch ms or an ISO-8601 time; events with a later ts are not applied */
  at?: string;
  format?: string;
}

/** Parses `--at`: integer epoch ms, or an ISO-8601 date, or date-time with its offset (iso-time.ts). */
export function parseAt(at: string | undefined): number {
  if (at === undefined) return Number.POSITIVE_INFINITY;
  return parseTimeArg(at, (m) => new Error(`--at: ${m}`));
}

function finiteOrNull(_key: string, value: unknown): unknown {
  return typeof value === 'number' && !Number.isFinite(value) ? null : value;
}

export interface AccountRow {
  margin: AccountMargin;
  decision: Decision;
}

/** Replays `file` up to `atMs` and returns each account's state and rules-only decision. */
export async function replayAccounts(
  file: string,
  atMs: number,
): Promise<{ book: MarginBook; rows: AccountRow[]; asOf: number }> {
  const book = new MarginBook();
  let asOf = Number.NEGATIVE_INFINITY;
  for await (const { line, event } of readEventsFile(file)) {
    if (event.ts > atMs) break;
    try {
      book.apply(event);
    } catch (e) {
      if (e instanceof MarginRuleError) throw new Error(`${file}: line ${line}: ${e.message}`);
      throw e;
    }
    asOf = Math.max(asOf, event.ts);
  }
  const now = Number.isFinite(atMs) ? atMs : asOf;
  const rows = book.accountIds().map((id) => {
    const margin = book.snapshot(id)!;
    return { margin, decision: decide({ margin, instruments: book, now }).decision };
  });
  return { book, rows, asOf: now };
}

function jsonLine(r: AccountRow, asOf: number): string {
  const m = r.margin;
  const d = r.decision;
  return JSON.stringify(
    {
      account: m.account,
      asOf,
      cash: m.cash,
      cashBreakdown: m.cashBreakdown,
      equity: m.equity,
      mm: m.mm,
      im: m.im,
      marginRatio: m.marginRatio,
      freeCollateral: m.freeCollateral,
      upnl: m.upnl,
      notional: m.notional,
      positions: m.positions,
      decision: {
        action: d.action,
        rule: d.rule,
        rulesOnly: d.rulesOnly,
        reasons: d.reasons,
        orders: d.orders,
      },
    },
    finiteOrNull,
  );
}

const num = (x: number | null, digits = 2): string =>
  x === null ? '-' : Number.isFinite(x) ? x.toFixed(digits) : x > 0 ? 'inf' : '-inf';

function table(rows: AccountRow[], book: MarginBook, asOf: number): string {
  const head = ['account', 'cash', 'equity', 'MM', 'IM', 'ratio', 'decision'];
  const lines = [`as of ${Number.isFinite(asOf) ? new Date(asOf).toISOString() : '(no events)'}`];
  lines.push(head.map((h, i) => (i === 0 ? h.padEnd(16) : h.padStart(14))).join(''));
  for (const { margin: m, decision: d } of rows) {
    const cells = [num(m.cash), num(m.equity), num(m.mm), num(m.im), num(m.marginRatio, 3), `${d.action}`];
    lines.push(m.account.padEnd(16) + cells.map((c) => c.padStart(14)).join(''));
    for (const p of m.positions) {
      lines.push(
        `    ${p.symbol.padEnd(12)} qty ${num(p.qty, 4)} entry ${num(p.avgEntry)} mark ${num(p.mark)} ` +
          `notional ${num(p.notional)} tier ${p.tierIndex} liq ${num(p.liquidationPrice)} bkr ${num(p.bankruptcyPrice)}`,
      );
    }
  }
  const f = book.venueFunds();
  lines.push(
    `venue: insurance fund ${num(f.insuranceFund)}  fees collected ${num(f.feesCollected)}  ` +
      `socialised loss ${num(f.socialisedLoss)}`,
  );
  return `${lines.join('\n')}\n`;
}

/** Returns the exit code (0 ok, 1 on an invalid history). */
export async function accountsCommand(
  opts: AccountsOptions,
  out: NodeJS.WritableStream = process.stdout,
  err: NodeJS.WritableStream = process.stderr,
): Promise<number> {
  const format = opts.format ?? 'table';
  if (format !== 'json' && format !== 'table') {
    err.write(`preempt accounts: --format must be json or table (got "${format}")\n`);
    return 1;
  }
  let result: Awaited<ReturnType<typeof replayAccounts>>;
  try {
    result = await replayAccounts(opts.events, parseAt(opts.at));
  } catch (e) {
    if (e instanceof InvalidEventError) err.write(`${opts.events}: ${e.message}\n`);
    else err.write(`preempt accounts: ${(e as Error).message}\n`);
    return 1;
  }
  const { rows, book, asOf } = result;
  if (format === 'json') for (const r of rows) out.write(`${jsonLine(r, asOf)}\n`);
  else out.write(table(rows, book, asOf));
  return 0;
}

export function register(program: Command): void {
  program
    .command('accounts')
    .description(
      'replay a history through the margin core and print every account state and venue-rules decision',
    )
    .requiredOption('--events <file>', 'canonical history (.jsonl or .jsonl.gz)')
    .option('--at <ts>', 'replay up to this time (epoch ms or ISO-8601); default: the whole file')
    .option('--format <format>', 'json (one object per line) or table', 'table')
    .action(async (opts: AccountsOptions) => {
      process.exitCode = await accountsCommand(opts);
    });
}
