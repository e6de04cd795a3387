/**
 * `preempt simulate --scenario NAME|FILE --accounts N --seed S --out FILE.jsonl[.gz]`: run a scenario,
 * stream its canonical history to the file (gzip when the name ends in .gz), show progress on stderr and
 * print the run's summary on stdout (a table, or JSON with --json).
 */
import { SingleBar } from 'cli-progress';
import type { Command } from 'commander';
import { MAX_SEED } from '../../sim/random.js';
import { loadScenario, namedScenarios } from '../../sim/scenario/load.js';
import { SimulationInputError, simulate } from '../../sim/simulate.js';
import { JsonlFileSink } from '../../sim/sink.js';
import type { SimulationSummary } from '../../sim/venue/types.js';
import { writeAtomically } from '../atomic-file.js';

export interface SimulateCliOptions {
  scenario: string;
  accounts: string;
  seed: string;
  out: string;
  json?: boolean;
  progress?: boolean;
}

function integer(name: string, raw: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const v = Number(raw);
  if (!Number.isInteger(v) || v < min || v > max)
    throw new SimulationInputError(
      `--${name} must be an integer ${max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `from ${min} to ${max}`} (got "${raw}")`,
    );
  return v;
}

const usd = (x: number): string => `$${x.toLocaleString('en-US', { maximumFractionDigits: 0 })}`;

export function formatSummary(s: SimulationSummary): string {
  const pct = (a: number, b: number) => (b > 0 ? `${((100 * a) / b).toFixed(1)}%` : '-');
  const lines = [
    `scenario          ${s.scenario} (seed ${s.seed}, ${s.minutes} minutes)`,
    `accounts          ${s.accounts}`,
    `events            ${s.events}`,
    `liquidations      ${s.liquidations} events, ${s.liquidatedAccounts} accounts (${pct(s.liquidatedAccounts, s.accounts)}), ${usd(s.liquidatedNotional)} notional`,
    `bankruptcies      ${s.bankruptcies}`,
    `bad debt          ${usd(s.badDebt)} (insurance fund covered ${usd(s.insuranceCovered)}, socialised ${usd(s.socialisedLoss)}, ${s.adlEvents} ADL events)`,
    `insurance fund    ${usd(s.insuranceFundStart)} -> ${usd(s.insuranceFundEnd)}`,
  ];
  if (s.reductions > 0)
    lines.push(`early reductions  ${s.reductions} fills, ${usd(s.reducedNotional)} notional`);
  lines.push('by behaviour      accounts  liquidated  bankrupt');
  for (const [b, v] of Object.entries(s.byBehaviour))
    lines.push(
      `  ${b.padEnd(16)}${String(v.accounts).padStart(8)}  ${pct(v.liquidated, v.accounts).padStart(10)}  ${pct(v.bankrupt, v.accounts).padStart(8)}`,
    );
  return `${lines.join('\n')}\n`;
}

export async function runSimulate(
  opts: SimulateCliOptions,
  out: NodeJS.WritableStream = process.stdout,
  err: NodeJS.WritableStream = process.stderr,
): Promise<SimulationSummary> {
  const accounts = integer('accounts', opts.accounts, 1);
  const seed = integer('seed', opts.seed, 0, MAX_SEED);
  const loaded = loadScenario(opts.scenario);
  const summary = await writeAtomically(opts.out, (tmp) =>
    simulateInto(tmp, loaded, accounts, seed, opts, err),
  );
  out.write(opts.json ? `${JSON.stringify(summary)}\n` : formatSummary(summary));
  return summary;
}

async function simulateInto(
  path: string,
  loaded: ReturnType<typeof loadScenario>,
  accounts: number,
  seed: number,
  opts: SimulateCliOptions,
  err: NodeJS.WritableStream,
): Promise<SimulationSummary> {
  const sink = new JsonlFileSink(path);
  const bar =
    opts.progress === false
      ? undefined
      : new SingleBar({
          stream: err,
          format:
            'simulate {bar} {percentage}% | minute {value}/{total} | {events} events | {liq} liquidations | ETA {eta_formatted}',
          hideCursor: true,
          noTTYOutput: true,
          notTTYSchedule: 5000,
          etaBuffer: 200,
        });
  let events = 0;
  let liquidations = 0;
  const counting = {
    write: (ev: Parameters<JsonlFileSink['write']>[0]) => {
      events++;
      if (ev.type === 'liquidation') liquidations++;
      sink.write(ev);
    },
    flush: () => sink.flush(),
  };
  let summary: SimulationSummary;
  try {
    bar?.start(1, 0, { events: 0, liq: 0 });
    summary = await simulate(loaded, {
      accounts,
      seed,
      sink: counting,
      onMinute: (m, total) => {
        if (m === 0) bar?.setTotal(total);
        if (m % 10 === 9 || m === total - 1) bar?.update(m + 1, { events, liq: liquidations });
      },
    });
  } finally {
    bar?.stop();
    await sink.close();
  }
  return summary;
}

export function register(program: Command): void {
  program
    .command('simulate')
    .description('simulate a venue with traders over a scenario and write its canonical event history')
    .requiredOption('--scenario <name|file>', 'a named scenario (listed below) or a scenario .json file')
    // read from scenarios/ only when help is shown, not at every start of the CLI
    .addHelpText('after', () => `\nNamed scenarios: ${namedScenarios().join(', ')}`)
    .option('--accounts <n>', 'simulated accounts', '2000')
    .option('--seed <s>', 'PRNG seed (same seed, same bytes)', '1')
    .requiredOption('--out <file>', 'output history (.jsonl, or .jsonl.gz for gzip)')
    .option('--json', 'print the summary as one JSON object')
    .option('--no-progress', 'no progress bar on stderr')
    .action(async (opts: SimulateCliOptions) => {
      await runSimulate(opts);
    });
}
