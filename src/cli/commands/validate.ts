/**
 * `preempt validate FILE...`: read canonical histories and report what they hold, or the first invalid
 * line (line number, field, reason) with a non-zero exit.
 */
import type { Command } from 'commander';
import { emptyStats, type ReadStats, readEventsFile } from '../../events/reader.js';
import { EVENT_TYPES } from '../../events/schema.js';
import { InvalidEventError } from '../../events/validate.js';

export interface ValidateOptions {
  skipInvalid?: boolean;
  json?: boolean;
}

function formatStats(file: string, stats: ReadStats): string {
  const row = (label: string, value: number | string) => `  ${label.padEnd(13)} ${value}\n`;
  let text = `${file}\n`;
  for (const type of EVENT_TYPES) if (stats.byType[type] > 0) text += row(type, stats.byType[type]);
  text += row('valid', stats.valid) + row('duplicates', stats.duplicates) + row('skipped', stats.skipped);
  if (stats.outOfOrder > 0)
    text += row('out-of-order', `${stats.outOfOrder} (ts earlier than the event before)`);
  const f = stats.firstInvalid;
  if (f) text += `  first invalid: line ${f.line}: field ${f.field}: ${f.reason}\n`;
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
    try {
      for await (const _ of readEventsFile(file, stats, { skipInvalid: opts.skipInvalid ?? false })) {
        // the reader counts as it goes
      }
    } catch (e) {
      if (!(e instanceof InvalidEventError)) throw e;
      err.write(`${file}: ${e.message}\n`);
      failed = true;
      continue;
    }
    out.write(opts.json ? `${JSON.stringify({ file, ...stats })}\n` : formatStats(file, stats));
  }
  return failed ? 1 : 0;
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
