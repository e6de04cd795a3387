#!/usr/bin/env node
// Launcher for the `preempt` CLI: runs the TypeScript entry point under Node with the flags every preempt
// process needs (--no-wasm-dynamic-tiering keeps TF.js WASM kernels at full speed; tsx loads TypeScript).
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const entry = fileURLToPath(new URL('../src/cli/main.ts', import.meta.url));
const tsx = import.meta.resolve('tsx');
const child = spawn(
  process.execPath,
  ['--no-wasm-dynamic-tiering', '--import', tsx, entry, ...process.argv.slice(2)],
  { stdio: 'inherit' },
);
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(signal, () => child.kill(signal));
}
child.on('exit', (code, signal) => {
  if (signal) process.kill(process.pid, signal);
  else process.exit(code ?? 1);
});
