/**
 * `preempt evaluate`: a trained model and its stored baselines on other histories (a day it never saw, the
 * latest week): the held-out metrics table, the model's reliability by pd band, then calibration over time
 * (defaults observed against those each scorer expected, in total and in the periods the model missed most)
 * and, with `--exclude`, the metrics again without the rows of the given windows; `--out` writes it all as
 * JSON (every period included).
 */

import { writeFile } from 'node:fs/promises';
import { type Command, InvalidArgumentError } from 'commander';
import { evaluateModel, type ModelEvaluation, type TimeWindow } from '../../../training/evaluate-model.js';
import { metricsRowsTable } from '../../../training/report.js';
import { parseTimeArg } from '../../events/iso-time.js';
import { writeAtomically } from '../atomic-file.js';
import { parseDurationMs } from '../duration.js';

const pct = (v: number | null) => (v === null ? 'n/a' : `${(v * 100).toFixed(2)}%`);

export function evaluationText(e: ModelEvaluation): string {
  const lines = [
    `${e.rows} rows (${e.positives} liquidated within the horizon) from ${e.files.join(', ')}`,
    '',
    metricsRowsTable(Object.entries(e.metrics), false),
  ];
  lines.push('', '| model pd band | rows | mean pd | observed |', '|---|---|---|---|');
  for (const b of e.reliability.model ?? [])
    if (b.rows > 0) lines.push(`| [${b.lo}, ${b.hi}) | ${b.rows} | ${pct(b.meanPd)} | ${pct(b.observed)} |`);
  lines.push('', ...calibrationOverTimeLines(e));
  if (e.outside) {
    const w = e.outside.windows.map((x) => `${iso(x.fromMs)}..${iso(x.toMs)}`).join(', ');
    lines.push(
      '',
      `without the rows of ${w}: ${e.outside.rows} rows (${e.outside.positives} liquidated within the horizon)`,
      '',
      metricsRowsTable(Object.entries(e.outside.metrics), false),
    );
  }
  return lines.join('\n');
}

const iso = (ms: number) => new Date(ms).toISOString().replace(':00.000Z', 'Z');

/** Expected (sum of pd) against observed defaults, in total and in the `top` periods the model missed most. */
export function calibrationOverTimeLines(e: ModelEvaluation, top = 5): string[] {
  const names = Object.keys(e.metrics);
  const total = (n: string) => e.byPeriod.reduce((s, p) => s + (p.expected[n] ?? 0), 0);
  const lines = [
    `defaults expected (sum of pd) against ${e.positives} observed: ${names.map((n) => `${n} ${total(n).toFixed(0)}`).join(', ')}`,
    '',
    `| ${e.periodMs / 60_000} min from (UTC) | rows | observed | ${names.map((n) => `${n} expected`).join(' | ')} |`,
    `|---|---|---|${names.map(() => '---').join('|')}|`,
  ];
  const gap = (p: ModelEvaluation['byPeriod'][number]) => Math.abs(p.observed - (p.expected.model ?? 0));
  const worst = [...e.byPeriod].sort((a, b) => gap(b) - gap(a) || a.startMs - b.startMs).slice(0, top);
  for (const p of worst.sort((a, b) => a.startMs - b.startMs))
    lines.push(
      `| ${iso(p.startMs)} | ${p.rows} | ${p.observed} | ${names.map((n) => (p.expected[n] ?? 0).toFixed(0)).join(' | ')} |`,
    );
  return lines;
}

/** `FROM..TO`, two ISO-8601 times with their offsets (or epoch ms): snapshot times in [FROM, TO) */
export function parseWindow(text: string, previous: TimeWindow[] = []): TimeWindow[] {
  const parts = text.split('..');
  if (parts.length !== 2)
    throw new InvalidArgumentError(
      `"${text}" is not a window FROM..TO (e.g. 2020-03-12T09:00Z..2020-03-12T11:00Z)`,
    );
  const at = (t: string) =>
    parseTimeArg(t, (m) => new InvalidArgumentError(`"${text}" is not a window FROM..TO: ${m}`));
  const fromMs = at(parts[0]!);
  const toMs = at(parts[1]!);
  if (!(toMs > fromMs)) throw new InvalidArgumentError(`"${text}" ends before it starts`);
  return [...previous, { fromMs, toMs }];
}

interface EvaluateCliOptions {
  model: string;
  events: string[];
  out?: string;
  period: number;
  exclude?: TimeWindow[];
}

export function register(program: Command): void {
  program
    .command('evaluate')
    .description(
      'a trained model and its stored baselines on other histories: metrics, equal-mass ECE, reliability by pd band',
    )
    .requiredOption('--events <files...>', 'histories to evaluate on (.jsonl / .jsonl.gz)')
    .option('--model <dir>', 'model directory', 'models/default')
    .option('--period <duration>', 'period of the calibration-over-time table', parseDurationMs, 3_600_000)
    .option(
      '--exclude <FROM..TO>',
      'also report the metrics without the rows of this snapshot-time window (repeatable)',
      parseWindow,
    )
    .option('--out <file>', 'also write the evaluation as JSON')
    .action(async (opts: EvaluateCliOptions) => {
      const result = await evaluateModel({
        model: opts.model,
        events: opts.events,
        periodMs: opts.period,
        ...(opts.exclude ? { exclude: opts.exclude } : {}),
        onProgress: (p) => process.stderr.write(`\rreading ${p.file}: ${p.events} events`),
      });
      process.stderr.write('\n');
      process.stdout.write(`${evaluationText(result)}\n`);
      if (result.outside && result.outside.rows === result.rows)
        process.stderr.write(
          'warning: --exclude removed no rows: its windows are outside the histories (times in epoch ms, or ISO-8601 with an offset)\n',
        );
      if (opts.out) {
        const out = opts.out;
        await writeAtomically(out, (tmp) => writeFile(tmp, `${JSON.stringify(result, null, 2)}\n`));
      }
    });
}
