/**
 * `preempt backtest`: replay a scenario with each policy on the same seed and traders and compare them.
 */
import { Presets, SingleBar } from 'cli-progress';
import type { Command } from 'commander';
import { POLICY_NAMES, parsePolicies } from '../../backtest/policies.js';
import { formatTable, writeBacktestReport } from '../../backtest/report.js';
import { runBacktest } from '../../backtest/run.js';
import type { PolicyConfig } from '../../margin/index.js';
import { loadScorer } from '../../model/scorer.js';
import { parseIntArg } from '../duration.js';

interface BacktestCliOptions {
  scenario: string;
  accounts: number;
  seed: number;
  model: string;
  policy: string[];
  out?: string;
  marginRatio: string;
  policyConfig?: string;
}

export function register(program: Command): void {
  program
    .command('backtest')
    .description('compare liquidation-only, predictive and a non-ML early-warning rule on a scenario')
    .requiredOption('--scenario <name|file>', 'named scenario or scenario file')
    .option('--accounts <n>', 'simulated accounts', parseIntArg, 2000)
    .option('--seed <n>', 'seed', parseIntArg, 1)
    .option('--model <dir>', 'model directory for the predictive policy', 'models/default')
    .option('--policy <names...>', `policies (${POLICY_NAMES.join(', ')})`, [...POLICY_NAMES])
    .option('--margin-ratio <x>', 'threshold of the margin-ratio rule', '1.5')
    .option('--policy-config <json>', 'margin-core policy threshold overrides, e.g. \'{"pdReduce":0.1}\'')
    .option('--out <dir>', 'write report.json, report.md and charts here')
    .action(async (opts: BacktestCliOptions) => {
      const policies = parsePolicies(opts.policy);
      const scorer = policies.includes('predictive') ? await loadScorer(opts.model) : undefined;
      // policies run one after the other: one bar, restarted for each (also reports when stderr is a file)
      const bar = new SingleBar(
        {
          format: '{policy} |{bar}| {value}/{total} min | ETA {eta_formatted}',
          stream: process.stderr,
          hideCursor: true,
          noTTYOutput: true,
          notTTYSchedule: 10_000,
        },
        Presets.shades_classic,
      );
      let current = '';
      try {
        const result = await runBacktest({
          scenario: opts.scenario,
          accounts: opts.accounts,
          seed: opts.seed,
          policies,
          scorer,
          marginRatioThreshold: Number(opts.marginRatio),
          ...(opts.policyConfig
            ? { policyConfig: JSON.parse(opts.policyConfig) as Partial<PolicyConfig> }
            : {}),
          onProgress: (policy, minute, minutes) => {
            if (policy !== current) {
              if (current) bar.stop();
              current = policy;
              bar.start(minutes, 0, { policy: policy.padEnd(16) });
            }
            if (minute % 10 === 0 || minute === minutes) bar.update(minute);
          },
        });
        bar.stop();
        process.stdout.write(`${formatTable(result)}\n`);
        if (opts.out) {
          await writeBacktestReport(opts.out, result);
          process.stderr.write(`report written to ${opts.out}\n`);
        }
      } finally {
        bar.stop();
        await scorer?.close();
      }
    });
}
