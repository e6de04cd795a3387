/**
 * `preempt selection`: whom the model and the margin-ratio rule would flag, and how early, on the
 * liquidation-only path of a scenario (src/backtest/selection.ts). Prints the table; with `--out DIR` also
 * writes selection.json, selection.md and frontier.svg there.
 */
import type { Command } from 'commander';
import {
  DEFAULT_SELECTION_PD,
  DEFAULT_SELECTION_RATIOS,
  formatSelection,
  runSelection,
  writeSelectionReport,
} from '../../backtest/selection.js';
import { ownSettings } from '../../backtest/sweep.js';
import type { PolicyConfig } from '../../margin/index.js';
import { loadScorer } from '../../model/scorer.js';
import { MAX_SEED } from '../../sim/random.js';
import { checkOutDir, replaceFilesIn } from '../atomic-file.js';
import { intIn, parseList, parsePolicyConfig, progressDisplay } from './backtest.js';

interface SelectionCliOptions {
  scenario: string;
  accounts: number;
  seed: number;
  model: string;
  pdThresholds: number[];
  gates?: number[];
  ratioThresholds: number[];
  leadMinutes: number;
  policyConfig?: Partial<PolicyConfig>;
  byBehaviour: boolean;
  byFlow: boolean;
  out?: string;
  progress: boolean;
}

export function register(program: Command): void {
  program
    .command('selection')
    .description(
      'whom the model and the margin-ratio rule would alert, and how early, on the liquidation-only path (nothing acts)',
    )
    .requiredOption('--scenario <name|file>', 'named scenario or scenario file')
    .option('--accounts <n>', 'simulated accounts', intIn('--accounts', 1, 10_000_000), 2000)
    .option('--seed <n>', 'seed (0 to 2^32 - 1)', intIn('--seed', 0, MAX_SEED), 1)
    .option('--model <dir>', 'model directory', 'models/default')
    .option('--pd-thresholds <list>', 'pd thresholds of the model, each with every gate', parseList, [
      ...DEFAULT_SELECTION_PD,
    ])
    .option(
      '--gates <list>',
      "equity/MM gates of the model (0: none; default: the policy config's gate and none)",
      parseList,
    )
    .option('--ratio-thresholds <list>', 'equity/MM thresholds of the margin-ratio rule', parseList, [
      ...DEFAULT_SELECTION_RATIOS,
    ])
    .option(
      '--lead-minutes <n>',
      "an alert counts in time at least this many minutes before the account's first liquidation",
      intIn('--lead-minutes', 0, 1_000_000),
      15,
    )
    .option(
      '--policy-config <json>',
      'policy overrides whose pdReduce and reduceGateMarginRatio are the settings judged (default: the defaults)',
      parsePolicyConfig,
    )
    .option(
      '--by-behaviour',
      "also break the alerts down by the simulated traders' behaviour and bound a behaviour-aware ratio rule",
      false,
    )
    .option(
      '--by-flow',
      'also bound a ratio rule with a second threshold for accounts showing an order-flow trait (what the model sees)',
      false,
    )
    .option('--out <dir>', 'write selection.json, selection.md and frontier.svg here')
    .option('--no-progress', 'no progress bar on stderr')
    .action(async (opts: SelectionCliOptions) => {
      if (opts.out) await checkOutDir(opts.out);
      const own = ownSettings(opts.policyConfig ?? {});
      const scorer = await loadScorer(opts.model);
      const { onProgress, stop } = progressDisplay(opts.progress ? 1 : 0);
      try {
        const result = await runSelection({
          scenario: opts.scenario,
          accounts: opts.accounts,
          seed: opts.seed,
          scorer,
          pdThresholds: opts.pdThresholds,
          gates: opts.gates ?? [own.gate, 0],
          ratioThresholds: opts.ratioThresholds,
          leadMinutes: opts.leadMinutes,
          own,
          byBehaviour: opts.byBehaviour,
          byFlow: opts.byFlow,
          onMinute: (m, n) => onProgress('selection', m, n),
        });
        stop();
        const table = formatSelection(result);
        process.stdout.write(`${table}\n`);
        if (opts.out) {
          const dir = opts.out;
          await replaceFilesIn(dir, (staging) =>
            writeSelectionReport(staging, result, { model: opts.model }),
          );
          process.stderr.write(`selection written to ${dir}\n`);
        }
      } finally {
        stop();
        await scorer.close();
      }
    });
}
