// Snapshot worker-thread entry: registers the TypeScript loader in this thread, then loads the real entry.
import { workerData } from 'node:worker_threads';
import { register } from 'tsx/esm/api';

register();
await import(workerData.entry);
