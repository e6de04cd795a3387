#!/usr/bin/env node
// Launcher for the `preempt` CLI: runs the TypeScript entry point under Node with the flags every preempt
// process needs (--no-wasm-dynamic-tiering keeps TF.js WASM kernels at full speed; tsx loads TypeScript).
import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import { fileURLToPath } from 'node:url';

const entry = fileURLToPath(new URL('../src/cli/main.ts', import.meta.url));
const tsx = import.meta.resolve('tsx');
const child = spawn(
  process.execPath,
  ['--no-wasm-dynamic-tiering', '--import', tsx, entry, ...process.argv.slice(2)],
  { stdio: 'inherit' },
);
const forwarded = ['SIGINT', 'SIGTERM', 'SIGHUP'];
for (const signal of forwarded) {
  process.on(signal, () => child.kill(signal));
}
child.on('exit', (code, signal) => {
  if (signal) {
    // die of the same signal, so that a shell, `set -e` or a job runner sees the run was killed: with our
    // own handler still installed the re-raised signal would be caught and the launcher would exit 0
    for (const s of forwarded) process.removeAllListeners(s);
    process.kill(process.pid, signal);
    // a signal that does not end a process by default: exit as a shell reports it (128 + its number)
    setTimeout(() => process.exit(128 + (constants.signals[signal] ?? 0)), 100).unref();
  } else process.exit(code ?? 1);
});
