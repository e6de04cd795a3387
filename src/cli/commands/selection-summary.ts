/**
 * `preempt selection-summary FILE...`: what a rule that knows more than the ratio could do, read from
 * selection.json files written by `selection --by-behaviour` or `--by-flow` over many days and seeds
 * (src/backtest/selection-summary.ts): the model's own gain over the plain rule beside the richer rule's, in
 * sample, out of seed and leaving one day out. Runs nothing.
 */
import { writeFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { z } from 'zod';
import {
  formatSelectionSummary,
  type SelectionRun,
  summarizeSelections,
} from '../../backtest/selection-summary.js';
import { writeAtomically } from '../atomic-file.js';
import { readJsonFile } from '../read-json.js';

const finite = z.number().finite();
const counts = z.object({
  alerted: z.number().int().nonnegative(),
  falseAlarms: z.number().int().nonnegative(),
  badDebtInTime: finite.nonnegative(),
});
const RunSchema = z.looseObject({
  scenario: z.string(),
  seed: z.number().int(),
  reference: z.looseObject({ badDebt: finite.nonnegative() }),
  points: z.array(
    z.looseObject({
      signal: z.enum(['predictive', 'margin-ratio']),
      label: z.string(),
      threshold: finite,
      falseAlarms: z.number().int().nonnegative(),
      badDebtInTime: finite.nonnegative(),
      inTimeShare: finite,
    }),
  ),
  own: z.looseObject({
    point: z.looseObject({ falseAlarms: z.number().int(), badDebtInTime: finite, inTimeShare: finite }),
    ratioFalseAlarms: finite.nullable(),
  }),
  groups: z
    .looseObject({
      names: z.array(z.string()),
      bySetting: z.array(z.object({ label: z.string(), counts: z.array(counts) })),
      oracleAtOwn: finite.nullable(),
    })
    .optional(),
  flow: z
    .object({
      traits: z.array(
        z.looseObject({
          name: z.string(),
          points: z.array(
            z.looseObject({
              without: finite,
              with: finite,
              falseAlarms: z.number().int().nonnegative(),
              badDebtInTime: finite.nonnegative(),
            }),
          ),
          atOwn: finite.nullable(),
        }),
      ),
    })
    .optional(),
});

/** Reads one selection.json; a bad file is an error naming the file and the field. */
export async function readSelectionRun(file: string): Promise<SelectionRun> {
  const run = (await readJsonFile(file, RunSchema, 'selection.json')) as unknown as SelectionRun;
  if (run.groups && run.groups.bySetting.length !== run.points.length)
    throw new Error(
      `${file}: groups.bySetting has ${run.groups.bySetting.length} settings, points ${run.points.length}`,
    );
  if (!run.groups && !run.flow)
    throw new Error(`${file}: neither groups nor flow (run selection with --by-behaviour or --by-flow)`);
  return run;
}

export function register(program: Command): void {
  program
    .command('selection-summary')
    .description(
      "what a ratio rule that knows each account's behaviour (or an order-flow trait) saves against the plain rule, over selection.json files",
    )
    .argument('<files...>', 'selection.json files written by selection --by-behaviour or --by-flow')
    .option('--out <file>', "also write every run's row as JSON here")
    .action(async (files: string[], opts: { out?: string }) => {
      const runs: SelectionRun[] = [];
      for (const f of files) runs.push(await readSelectionRun(f));
      const summaries = summarizeSelections(runs);
      process.stdout.write(`${formatSelectionSummary(summaries)}\n`);
      const out = opts.out;
      if (out) await writeAtomically(out, (tmp) => writeFile(tmp, `${JSON.stringify(summaries, null, 2)}\n`));
    });
}
