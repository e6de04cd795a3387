/**
 * `preempt validate FILE...`: read canonical histories and report what they hold, or the first invalid
 * line (line number, field, reason) with a non-zero exit; with --skip-invalid, every invalid line is
 * listed (the first MAX_LISTED of a file) and counted.
 */
import type { Command } from 'commander';
import { emptyStats, type ReadStats, readEventsFile } from '../../events/reader.js';
import { EVENT_TYPES } from '../../events/schema.js';
import { type EventIssue, InvalidEventError } from '../../events/validate.js';

export interface ValidateOptions {
  skipInvalid?: boolean;
  json?: boolean;
}

/** invalid lines listed per file with --skip-invalid (all are counted) */
export const MAX_LISTED = 100;

type Located = { line: number } & EventIssue;

function formatStats(file: string, stats: ReadStats, invalid: Located[]): string {
  const row = (label: string, value: number | string) => `  ${label.padEnd(13)} ${value}\n`;
  let text = `${file}\n`;
  for (const type of EVENT_TYPES) if (stats.byType[type] > 0) text += row(type, stats.byType[type]);
  text += row('valid', stats.valid) + row('duplicates', stats.duplicates) + row('skipped', stats.skipped);
  if (stats.blank > 0) text += row('blank lines', stats.blank);
  for (const f of invalid) text += `  invalid: line ${f.line}: field ${f.field}: ${f.reason}\n`;
  if (stats.skipped > invalid.length)
    text += `  (${stats.skipped - invalid.length} more invalid lines not listed)\n`;
  return text;
}

/** Returns the exit code: 0 when every file read to its end, 1 when one stopped at an invalid line. */
export async function validateFiles(
  files: string[],
  opts: ValidateOptions,
  out: NodeJS.WritableStream = process.stdout,
  err: NodeJS.WritableStream = process.stderr,
): Promise<number> {
  let failed = false;
  for (const file of files) {
    const stats = emptyStats();
    const invalid: Located[] = [];
    const onInvalid = (line: number, issue: EventIssue) => {
      if (invalid.length < MAX_LISTED) invalid.push({ line, ...issue });
    };
    try {
      for await (const _ of readEventsFile(file, stats, {
        skipInvalid: opts.skipInvalid ?? false,
        onInvalid,
      })) {
        // the reader counts as it goes
      }
    } catch (e) {
      if (!(e instanceof InvalidEventError)) throw e;
      err.write(`${file}: ${e.message}\n`);
      if (opts.json) {
        const error = { line: e.position, field: e.field, reason: e.reason };
        out.write(`${JSON.stringify({ file, ok: false, error, ...withoutFirst(stats) })}\n`);
      }
      failed = true;
      continue;
    }
    out.write(
      opts.json
        ? `${JSON.stringify({ file, ok: true, ...withoutFirst(stats), invalid })}\n`
        : formatStats(file, stats, invalid),
    );
  }
  return failed ? 1 : 0;
}

function withoutFirst(stats: ReadStats): Omit<ReadStats, 'firstInvalid'> {
  const { firstInvalid: _, ...rest } = stats;
  return rest;
}

export function register(program: Command): void {
  program
    .command('validate')
    .description('validate canonical event files (.jsonl or .jsonl.gz) and count their events per type')
    .argument('<files...>', 'history files')
    .option('--skip-invalid', 'skip and count invalid lines instead of stopping at the first')
    .option('--json', 'one JSON object of counts per file')
    .action(async (files: string[], opts: ValidateOptions) => {
      process.exitCode = await validateFiles(files, opts);
    });
}
