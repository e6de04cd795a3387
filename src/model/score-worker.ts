/**
 * A scoring worker thread: loads the model once, then answers `{id, matrix, rows}` with `{id, pd}`
 * (buffers transferred, not copied).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { Predictor } from './predictor.js';

interface Request {
  id: number;
  matrix: Float32Array;
  rows: number;
}

const port = parentPort;
if (!port) throw new Error('score-worker must run in a worker thread');
const { modelDir } = workerData as { modelDir: string };

try {
  const predictor = await Predictor.load(modelDir);
  port.on('message', (req: Request) => {
    try {
      const pd = predictor.score(req.matrix, req.rows);
      port.postMessage({ id: req.id, pd }, [pd.buffer as ArrayBuffer]);
    } catch (e) {
      port.postMessage({ id: req.id, error: (e as Error).message });
    }
  });
  port.postMessage({ ready: true, backend: predictor.backend });
} catch (e) {
  port.postMessage({ ready: false, error: (e as Error).message });
}
