/**
 * A scoring worker thread: loads the model once (from the files its pool read, or a directory), then answers
 * `{id, matrix, rows}` with `{id, pd, input}`. A transferred input buffer goes back with the result (the pool
 * reuses it for the next slice); a matrix on a SharedArrayBuffer is read in place and not sent back. If this
 * thread exits or crashes, the pool fails the slices it held and starts another.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { ModelFiles } from './model-files.js';
import { Predictor } from './predictor.js';

interface Request {
  id: number;
  matrix: Float32Array;
  rows: number;
}

const port = parentPort;
if (!port) throw new Error('score-worker must run in a worker thread');
// files the parent read (their Buffers arrive as Uint8Arrays), or a directory to read
const { model } = workerData as { model: string | ModelFiles };

try {
  const predictor = await Predictor.load(model);
  port.on('message', (req: Request & { crashForTest?: boolean }) => {
    // test hook (ScorePool.crashWorkerForTest): an uncaught error, as a bug in scoring would raise
    if (req.crashForTest) throw new Error('score worker crash requested by a test');
    const owned = !(req.matrix.buffer instanceof SharedArrayBuffer);
    const input = owned ? req.matrix : undefined;
    const transfer = owned ? [req.matrix.buffer as ArrayBuffer] : [];
    try {
      const pd = predictor.score(req.matrix, req.rows);
      port.postMessage({ id: req.id, pd, input }, [pd.buffer as ArrayBuffer, ...transfer]);
    } catch (e) {
      port.postMessage({ id: req.id, error: (e as Error).message, input }, transfer);
    }
  });
  port.postMessage({ ready: true, backend: predictor.backend, path: predictor.path });
} catch (e) {
  port.postMessage({ ready: false, error: (e as Error).message });
}
