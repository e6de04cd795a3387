/**
 * `preempt evaluate`: a trained model and its stored baselines on other histories (a day it never saw, the
 * latest week): the held-out metrics table, then the model's reliability by pd band; `--out` writes it all
 * as JSON.
 */
import { writeFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { evaluateModel, type ModelEvaluation } from '../../../training/evaluate-model.js';
import { metricsRowsTable } from '../../../training/report.js';

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
  return lines.join('\n');
}

interface EvaluateCliOptions {
  model: string;
  events: string[];
  out?: string;
}

export function register(program: Command): void {
  program
    .command('evaluate')
    .description(
      'a trained model and its stored baselines on other histories: metrics, equal-mass ECE, reliability by pd band',
    )
    .requiredOption('--events <files...>', 'histories to evaluate on (.jsonl / .jsonl.gz)')
    .option('--model <dir>', 'model directory', 'models/default')
    .option('--out <file>', 'also write the evaluation as JSON')
    .action(async (opts: EvaluateCliOptions) => {
      const result = await evaluateModel({
        model: opts.model,
        events: opts.events,
        onProgress: (p) => process.stderr.write(`\rreading ${p.file}: ${p.events} events`),
      });
      process.stderr.write('\n');
      process.stdout.write(`${evaluationText(result)}\n`);
      if (opts.out) await writeFile(opts.out, `${JSON.stringify(result, null, 2)}\n`);
    });
}
