/**
 * A snapshot worker thread: receives row jobs (per-account arrays on SharedArrayBuffers, read in place),
 * writes the rows into the shared matrix with the same code as the main thread, and answers `{ id }`.
 */
import { parentPort } from 'node:worker_threads';
import { MarginSweep } from './margin-sweep.js';
import { type RowsJob, runRowsJob } from './rows-job.js';

const port = parentPort;
if (!port) throw new Error('snapshot-worker.ts runs as a worker thread');
const sweep = new MarginSweep();
port.on('message', (msg: { id: number; job: RowsJob }) => {
  try {
    runRowsJob(msg.job, sweep);
    port.postMessage({ id: msg.id });
  } catch (e) {
    port.postMessage({ id: msg.id, error: e instanceof Error ? (e.stack ?? e.message) : String(e) });
  }
});
port.postMessage({ ready: true });
