/**
 * `preempt evaluate`: a trained model and its stored baselines on other histories (a day it never saw, the
 * latest week): the held-out metrics table, then the model's reliability by pd band; `--out` writes it all
 * as JSON.
 */
import { writeFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { evaluateModel, type ModelEvaluation } from '../../../training/evaluate-model.js';

const fmt = (v: number | null | undefined, digits = 3) =>
  v === null || v === undefined ? 'n/a' : v.toFixed(digits);
const pct = (v: number | null) => (v === null ? 'n/a' : `${(v * 100).toFixed(2)}%`);

export function evaluationText(e: ModelEvaluation): string {
  const lines = [
    `${e.rows} rows (${e.positives} liquidated within the horizon) from ${e.files.join(', ')}`,
    '',
    '| | ROC-AUC | PR-AUC | Brier | ECE | ECE equal-mass | recall @1% | recall @5% | median lead (min) |',
    '|---|---|---|---|---|---|---|---|---|',
  ];
  for (const [name, m] of Object.entries(e.metrics))
    lines.push(
      `| ${name} | ${fmt(m.rocAuc)} | ${fmt(m.prAuc)} | ${fmt(m.brier, 4)} | ${fmt(m.ece, 4)} | ${fmt(m.eceEqualMass, 4)} | ${fmt(m.recallAt1pct)} | ${fmt(m.recallAt5pct)} | ${fmt(m.medianLeadMin, 0)} |`,
    );
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
