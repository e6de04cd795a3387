/**
 * Writes a variant of a scenario without some of its instruments: the same window, funding, population and
 * remaining instruments (their popularity weights renormalise over what is left when the simulator draws
 * each trader's instrument), with every relative data path rewritten to resolve from the output file. For
 * diagnostics such as "does the verdict change without SOL?"; the variant is named `NAME-without-SYMBOLS`.
 * Run: `npx tsx scenarios/without-instrument.ts SCENARIO OUT.json SYMBOL...`
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, isAbsolute, relative, resolve } from 'node:path';
import { loadScenario } from '../src/sim/scenario/load.js';

const [nameOrPath, out, ...drop] = process.argv.slice(2);
if (nameOrPath === undefined || out === undefined || drop.length === 0) {
  console.error('usage: npx tsx scenarios/without-instrument.ts SCENARIO OUT.json SYMBOL...');
  process.exit(2);
}
const { scenario, dir } = loadScenario(nameOrPath);
const symbols = new Set(scenario.instruments.map((i) => i.symbol));
for (const s of drop) {
  if (!symbols.has(s)) {
    console.error(`${scenario.name} has no instrument ${s} (it has ${[...symbols].join(', ')})`);
    process.exit(2);
  }
}
const outDir = dirname(resolve(out));
/** a data path as the output file must write it to name the same file */
const moved = (p: string): string =>
  p.startsWith('shared:') || isAbsolute(p) ? p : relative(outDir, resolve(dir, p));
const instruments = scenario.instruments
  .filter((i) => !drop.includes(i.symbol))
  .map((i) =>
    i.prices.kind === 'bars' ? { ...i, prices: { ...i.prices, files: i.prices.files.map(moved) } } : i,
  );
if (instruments.length === 0) {
  console.error('no instrument would be left');
  process.exit(2);
}
const variant = {
  ...scenario,
  name: `${scenario.name}-without-${drop.join('-')}`,
  description: `${scenario.name} without ${drop.join(', ')} (scenarios/without-instrument.ts): ${scenario.description ?? ''}`,
  instruments,
  funding:
    scenario.funding?.file === undefined
      ? scenario.funding
      : { ...scenario.funding, file: moved(scenario.funding.file) },
};
mkdirSync(outDir, { recursive: true });
writeFileSync(resolve(out), `${JSON.stringify(variant, null, 2)}\n`);
console.log(`${resolve(out)}: ${variant.name}, instruments ${instruments.map((i) => i.symbol).join(', ')}`);
