/**
 * The `preempt` command line: one program, one module per subcommand in ./commands.
 */
import { Command } from 'commander';
import * as start from './commands/start.js';
import * as validate from './commands/validate.js';

const commands = [validate, start];

export function buildProgram(): Command {
  const program = new Command('preempt')
    .description('predictive default detection and early exposure reduction for derivatives venues')
    .version('0.1.0')
    .showHelpAfterError();
  for (const c of commands) c.register(program);
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
