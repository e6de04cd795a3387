/**
 * `preempt features --events FILE --at TS --out FILE.csv`: replay a history through the feature pipeline
 * up to `--at` and write every account's feature row (the snapshot matrix) as CSV with a header of
 * `account` and the schema's names. Progress and counts go to stderr.
 */

import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { type Command, InvalidArgumentError } from 'commander';
import { parseTimeArg } from '../../events/iso-time.js';
import { emptyStats, type ReadStats, readEventsFile } from '../../events/reader.js';
import { csvHeader, csvRows } from '../../features/csv.js';
import { FeaturePipeline, type PipelineStats } from '../../features/pipeline.js';
import { FEATURE_COUNT, FEATURE_SCHEMA_HASH } from '../../features/schema.js';
import { writeAtomically } from '../atomic-file.js';

export interface FeaturesOptions {
  events: string;
  /** epoch ms */
  at: number;
  out: string;
  /** ms an event may arrive behind the newest seen and still be applied in order */
  toleranceMs?: number;
  onlyOpen?: boolean;
  skipInvalid?: boolean;
}

/** Integer epoch ms, or an ISO-8601 date/time. */
export function parseAtMs(text: string): number {
  return parseTimeArg(text, (m) => new InvalidArgumentError(m));
}

function parseToleranceMs(text: string): number {
  const n = Number(text);
  if (!(Number.isInteger(n) && n >= 0))
    throw new InvalidArgumentError(`"${text}" is not an integer >= 0 (ms)`);
  return n;
}

export interface FeaturesResult {
  rows: number;
  stats: PipelineStats;
  /** what the reader saw: lines, duplicates, invalid lines skipped (with --skip-invalid) */
  read: ReadStats;
}

/** Replays `opts.events` up to `opts.at` and writes the snapshot CSV to `opts.out`. */
export async function writeFeaturesCsv(opts: FeaturesOptions): Promise<FeaturesResult> {
  const tolerance = opts.toleranceMs ?? 0;
  // readEventsFile refuses duplicate ids: the pipeline need not remember them a second time
  const pipeline = new FeaturePipeline({ toleranceMs: tolerance, idsCheckedUpstream: true });
  const readStats = emptyStats();
  for await (const { event } of readEventsFile(opts.events, readStats, {
    skipInvalid: opts.skipInvalid ?? false,
    toleranceMs: tolerance,
  })) {
    if (event.ts > opts.at + tolerance) break; // the file is ordered: nothing later can be <= at
    if (event.ts <= opts.at) pipeline.apply(event);
  }
  const snap = pipeline.snapshot(opts.at, { onlyWithPosition: opts.onlyOpen ?? false });
  await writeAtomically(opts.out, async (tmp) => {
    const out = createWriteStream(tmp);
    const closed = once(out, 'close');
    try {
      out.write(csvHeader());
      for (const line of csvRows(snap.accounts, snap.matrix, FEATURE_COUNT))
        if (!out.write(line)) await once(out, 'drain');
    } finally {
      out.end();
    }
    await closed;
  });
  return { rows: snap.rows, stats: pipeline.stats, read: readStats };
}

export function register(program: Command): void {
  program
    .command('features')
    .description("replay a history up to a time and write every account's feature row as CSV")
    .requiredOption('--events <file>', 'history (.jsonl / .jsonl.gz)')
    .requiredOption('--at <ts>', 'snapshot time: epoch ms or ISO-8601', parseAtMs)
    .requiredOption('--out <file>', 'output CSV (header: account + feature names)')
    .option('--tolerance-ms <ms>', 'apply events up to this far out of order', parseToleranceMs, 0)
    .option('--only-open', 'only accounts with an open position')
    .option('--skip-invalid', 'skip and count invalid lines instead of stopping at the first')
    .action(async (opts: FeaturesOptions) => {
      const { rows, stats, read } = await writeFeaturesCsv(opts);
      process.stderr.write(
        `${rows} rows x ${FEATURE_COUNT} features at ${new Date(opts.at).toISOString()} written to ${opts.out} ` +
          `(schema ${FEATURE_SCHEMA_HASH.slice(0, 12)}; events applied ${stats.applied}, duplicates ` +
          `${stats.duplicates}, late ${stats.late}, refused ${stats.invalid + stats.rejected})\n`,
      );
      if (stats.lastRefusal) process.stderr.write(`last refused event: ${stats.lastRefusal}\n`);
      const first = read.firstInvalid;
      if (read.skipped > 0 && first)
        process.stderr.write(
          `skipped ${read.skipped} invalid lines of ${opts.events} (first: line ${first.line}: field ${first.field}: ${first.reason}; \`preempt validate --skip-invalid\` lists them)\n`,
        );
    });
}
