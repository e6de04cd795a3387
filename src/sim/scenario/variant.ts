/**
 * A scenario's variant without some of its instruments, for diagnostics such as "does the verdict change
 * without SOL?": the same window, funding, population and remaining instruments (their popularity weights
 * renormalise over what is left when the simulator draws each trader's instrument), named
 * `NAME-without-SYMBOLS`, with every relative data path rewritten to name the same file from `outDir`.
 */
import { isAbsolute, relative, resolve } from 'node:path';
import { type LoadedScenario, ScenarioError } from './load.js';
import type { Scenario } from './schema.js';

export function withoutInstruments(
  loaded: LoadedScenario,
  symbols: readonly string[],
  outDir: string,
): Scenario {
  const { scenario, dir, source } = loaded;
  const have = scenario.instruments.map((i) => i.symbol);
  const refuse = (why: string) => new ScenarioError('SCENARIO_INVALID', `${source}: ${why}`);
  if (symbols.length === 0) throw refuse('name at least one instrument to leave out');
  for (const s of symbols)
    if (!have.includes(s)) throw refuse(`no instrument ${s} (it has ${have.join(', ')})`);
  const instruments = scenario.instruments.filter((i) => !symbols.includes(i.symbol));
  if (instruments.length === 0) throw refuse('no instrument would be left');
  /** a data path as a file in outDir must write it to name the same file */
  const moved = (p: string): string =>
    p.startsWith('shared:') || isAbsolute(p) ? p : relative(resolve(outDir), resolve(dir, p));
  return {
    ...scenario,
    name: `${scenario.name}-without-${symbols.join('-')}`,
    description: `${scenario.name} without ${symbols.join(', ')} (scenarios/without-instrument.ts): ${scenario.description}`,
    instruments: instruments.map((i) =>
      i.prices.kind === 'bars' ? { ...i, prices: { ...i.prices, files: i.prices.files.map(moved) } } : i,
    ),
    funding:
      scenario.funding.file === undefined
        ? scenario.funding
        : { ...scenario.funding, file: moved(scenario.funding.file) },
  };
}
