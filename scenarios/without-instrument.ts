/**
 * Writes a variant of a scenario without some of its instruments (`withoutInstruments` in
 * src/sim/scenario/variant.ts), named `NAME-without-SYMBOLS`, its data paths resolving from the output file.
 * Run: `npx tsx scenarios/without-instrument.ts SCENARIO OUT.json SYMBOL...`
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { loadScenario } from '../src/sim/scenario/load.js';
import { withoutInstruments } from '../src/sim/scenario/variant.js';

const [nameOrPath, out, ...symbols] = process.argv.slice(2);
if (nameOrPath === undefined || out === undefined || symbols.length === 0) {
  console.error('usage: npx tsx scenarios/without-instrument.ts SCENARIO OUT.json SYMBOL...');
  process.exit(2);
}
const outDir = dirname(resolve(out));
const variant = withoutInstruments(loadScenario(nameOrPath), symbols, outDir);
mkdirSync(outDir, { recursive: true });
writeFileSync(resolve(out), `${JSON.stringify(variant, null, 2)}\n`);
console.log(
  `${resolve(out)}: ${variant.name}, instruments ${variant.instruments.map((i) => i.symbol).join(', ')}`,
);
