/**
 * `preempt sweep-summary FILE...`: one row per sweep (`sweep.json` written by `backtest --sweep --out`): the
 * predictive run at the policy's own settings (pdReduce and margin-ratio gate: those the file records it ran
 * with, else its policy config over today's defaults, or `--pd-reduce` / `--gate`) against the margin-ratio
 * rule's frontier at the same bad debt avoided, beside the sweep's verdict over the whole range. Issue #8's
 * third goal over many sweeps, read from files already written, without running anything.
 */
import type { Command } from 'commander';
import { z } from 'zod';
import { type AtSettings, atSettings, atSettingsText, ownSettings, ratioExit } from '../../backtest/sweep.js';
import { readJsonFile } from '../read-json.js';
import { parseList } from './backtest.js';

const finite = z.number().finite();
const SummarySchema = z.object({
  scenario: z.string(),
  accounts: z.number().int().positive(),
  seed: z.number().int(),
  policyConfig: z.looseObject({
    pdReduce: finite.optional(),
    reduceGateMarginRatio: finite.optional(),
  }),
  /** written since 2026-12-07; older files are read by their overrides over today's defaults */
  ownSettings: z.object({ pdReduce: finite, gate: finite }).optional(),
  points: z.array(
    z.looseObject({
      signal: z.enum(['predictive', 'margin-ratio']),
      label: z.string(),
      threshold: finite,
      gate: finite.optional(),
      /** margin-ratio: the level it disarms at (absent or equal to the threshold: no hysteresis) */
      exit: finite.optional(),
      avoided: finite.nullable(),
      falseAlarms: z.number().int().nonnegative(),
      reducedRatio: finite,
    }),
  ),
  comparison: z.looseObject({ verdict: z.string() }),
});

export interface SummaryRow {
  file: string;
  scenario: string;
  accounts: number;
  seed: number;
  pdReduce: number;
  gate: number;
  at: AtSettings | null;
  verdict: string;
}

/**
 * Which of the rule's runs make its frontier: with `ratioThresholds` and/or `ratioExitFactors`, only the runs at
 * those settings (the exit a factor gives is the one `backtest --sweep` writes for it; 1: no hysteresis), so that
 * sweeps written with different grids can be read on the same one. Absent: every run the file holds.
 */
export interface RuleGrid {
  ratioThresholds?: readonly number[];
  ratioExitFactors?: readonly number[];
}

/** Reads one sweep.json; a bad file is an error naming the file and the field. */
export async function summarizeSweep(
  file: string,
  over: { pdReduce?: number; gate?: number } & RuleGrid = {},
): Promise<SummaryRow> {
  const s = await readJsonFile(file, SummarySchema, 'sweep.json');
  const own = s.ownSettings ?? ownSettings(s.policyConfig);
  const pdReduce = over.pdReduce ?? own.pdReduce;
  const gate = over.gate ?? own.gate;
  const { ratioThresholds: ts, ratioExitFactors: fs } = over;
  const points = s.points.filter((p) => {
    if (p.signal !== 'margin-ratio') return true;
    const exit = p.exit ?? p.threshold;
    return (
      (ts === undefined || ts.includes(p.threshold)) &&
      (fs === undefined || fs.some((f) => ratioExit(p.threshold, f) === exit))
    );
  });
  return {
    file,
    scenario: s.scenario,
    accounts: s.accounts,
    seed: s.seed,
    pdReduce,
    gate,
    at: atSettings(points, pdReduce, gate),
    verdict: s.comparison.verdict,
  };
}

/** The table (Markdown) and a count of the verdicts at the settings. */
export function formatSummary(rows: readonly SummaryRow[]): string {
  const lines = [
    '| scenario | accounts | seed | at pd >= pdReduce, gate | verdict over the range both reach |',
    '|---|---|---|---|---|',
  ];
  const counts = { fewer: 0, level: 0, more: 0, beyond: 0, none: 0 };
  for (const r of rows) {
    const at = r.at
      ? `${atSettingsText(r.at)}${r.at.verdict === 'more' ? ' **(more)**' : ''}`
      : `no predictive run at pd ${r.pdReduce}, gate ${r.gate} that the rule reaches`;
    counts[r.at ? r.at.verdict : 'none']++;
    lines.push(`| ${r.scenario} | ${r.accounts} | ${r.seed} | ${at} | ${r.verdict} |`);
  }
  lines.push(
    '',
    `${rows.length} sweeps: fewer false alarms than the rule at the same bad debt avoided in ${counts.fewer + counts.beyond} (${counts.beyond} of them beyond the rule's reach), level in ${counts.level}, more in ${counts.more}; not compared in ${counts.none}`,
  );
  return lines.join('\n');
}

const num = (name: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new Error(`${name}: ${v} is not a number >= 0`);
  return n;
};

export function register(program: Command): void {
  program
    .command('sweep-summary')
    .description(
      "the predictive run at the policy's own settings against the margin-ratio rule at the same bad debt avoided, one row per sweep.json",
    )
    .argument('<files...>', 'sweep.json files (written by backtest --sweep --out)')
    .option(
      '--pd-reduce <p>',
      "pdReduce of the run to compare (default: what the sweep recorded it ran with, else its policy config's, else today's default)",
      num('--pd-reduce'),
    )
    .option(
      '--gate <ratio>',
      "its margin-ratio gate, 0 for none (default: what the sweep recorded it ran with, else its policy config's, else today's default)",
      num('--gate'),
    )
    .option(
      '--ratio-thresholds <list>',
      "the rule's frontier only over its runs at these equity/MM thresholds (default: every run in the file); the last column stays the file's own verdict over all its runs",
      parseList,
    )
    .option(
      '--ratio-exit-factors <list>',
      "the rule's frontier only over its runs with these exit factors (exit / threshold; 1: no hysteresis)",
      parseList,
    )
    .action(async (files: string[], opts: { pdReduce?: number; gate?: number } & RuleGrid) => {
      const rows: SummaryRow[] = [];
      for (const f of files) rows.push(await summarizeSweep(f, opts));
      process.stdout.write(`${formatSummary(rows)}\n`);
    });
}
