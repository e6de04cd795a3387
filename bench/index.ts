/**
 * `npm run bench`: runs every `bench/*.bench.ts` (or those named on the command line, e.g.
 * `npm run bench -- margin features`). Each prints its figures beside a baseline measured in the same run.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const only = process.argv.slice(2);
const files = readdirSync(import.meta.dirname)
  .filter((f) => f.endsWith('.bench.ts'))
  .filter((f) => only.length === 0 || only.includes(f.replace('.bench.ts', '')))
  .sort();

console.log(`preempt benchmarks: node ${process.version}, ${new Date().toISOString()}`);
if (!process.execArgv.includes('--no-wasm-dynamic-tiering'))
  console.log('warning: started without --no-wasm-dynamic-tiering');
for (const file of files) {
  console.log(`\n## ${file.replace('.bench.ts', '')}`);
  const mod = (await import(pathToFileURL(join(import.meta.dirname, file)).href)) as {
    run: () => Promise<void>;
  };
  await mod.run();
}
