/**
 * The `preempt` command line: one program, one module per subcommand in ./commands.
 */
import { Command } from 'commander';
import * as accounts from './commands/accounts.js';
import * as api from './commands/api.js';
import * as backtest from './commands/backtest.js';
import * as evaluate from './commands/evaluate.js';
import * as features from './commands/features.js';
import * as keys from './commands/keys.js';
import * as scoreHistory from './commands/score-history.js';
import * as selection from './commands/selection.js';
import * as selectionSummary from './commands/selection-summary.js';
import * as simulate from './commands/simulate.js';
import * as start from './commands/start.js';
import * as sweepSummary from './commands/sweep-summary.js';
import * as train from './commands/train.js';
import * as validate from './commands/validate.js';
import * as worker from './commands/worker.js';

export function buildProgram(): Command {
  const program = new Command('preempt')
    .description('predictive default detection and early exposure reduction for derivatives venues')
    .version('0.1.0')
    .showHelpAfterError();
  validate.register(program);
  accounts.register(program);
  features.register(program);
  simulate.register(program);
  train.register(program);
  train.registerWorker(program);
  scoreHistory.register(program);
  evaluate.register(program);
  backtest.register(program);
  sweepSummary.register(program);
  selection.register(program);
  selectionSummary.register(program);
  start.register(program);
  api.register(program);
  worker.register(program);
  keys.register(program);
  return program;
}

const isMain = process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').slice(-3).join('/'));
if (isMain) {
  buildProgram()
    .parseAsync(process.argv)
    .catch((e: unknown) => {
      const err = e as Error & { code?: string };
      process.stderr.write(`preempt: ${err.message}\n`);
      process.exitCode = 1;
    });
}
