/**
 * The score pool survives its worker threads: a thread that exits or crashes fails only the slices it held,
 * and is replaced (same model, backoff while replacements keep dying); closing the pool restarts nothing.
 */
import { cpSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FEATURE_NEUTRAL } from '../../src/features/schema.js';
import { readMetadata, writeMetadata } from '../../src/model/artifacts.js';
import { CHUNK_ROWS, Predictor } from '../../src/model/predictor.js';
import { ScorePool, scoreWorkerRestarts } from '../../src/model/score-pool.js';
import { loadScorer } from '../../src/model/scorer.js';
import { createMetrics } from '../../src/service/metrics.js';
import { Rng } from '../../src/sim/random.js';
import { testTempDir } from '../helpers/temp-dir.js';
import { eventually } from '../service/wait.js';

const MODEL = 'models/default';
let predictor: Predictor;
beforeAll(async () => {
  predictor = await Predictor.load(MODEL);
});
afterAll(() => predictor.dispose());

/** `n` rows around the neutral feature values */
function rows(n: number, seed: number): Float32Array {
  const cols = predictor.featureCount;
  const rng = new Rng(seed, 'pool-restart');
  const x = new Float32Array(n * cols);
  for (let r = 0; r < n; r++)
    for (let j = 0; j < cols; j++) x[r * cols + j] = (FEATURE_NEUTRAL[j] ?? 0) + rng.normal();
  return x;
}

/** several slices per thread, so every thread holds some when one is ended */
const N = 8 * CHUNK_ROWS + 123;

/** a logger whose records land in `records` */
function capture(): { log: pino.Logger; records: Record<string, unknown>[] } {
  const records: Record<string, unknown>[] = [];
  const log = pino({ level: 'info' }, { write: (line: string) => records.push(JSON.parse(line)) });
  return { log, records };
}

const allReady = (pool: ScorePool) =>
  eventually(
    () => pool.status(),
    (s) => s.ready === s.size,
    'every score worker ready',
  );

describe('score pool worker restarts', () => {
  it('rejects the slices of a terminated worker, then scores with new workers, same numbers', async () => {
    const x = rows(N, 1);
    const { log, records } = capture();
    const restartsBefore = scoreWorkerRestarts();
    const metrics = createMetrics();
    const pool = await ScorePool.start(MODEL, 2, predictor.featureCount, { log });
    try {
      const before = await pool.score(x, N);
      expect(Array.from(before)).toEqual(Array.from(predictor.score(x, N)));

      const inFlight = pool.score(x, N);
      await pool.terminateWorkerForTest(0);
      await expect(inFlight).rejects.toThrow(/score worker 0 exited/);

      // both threads gone: whatever scores now runs on replacements
      await pool.terminateWorkerForTest(1);
      await eventually(
        () => pool.status(),
        (s) => s.restarts === 2 && s.ready === 2,
        'both workers replaced',
      );
      const after = await pool.score(x, N);
      expect(Array.from(after)).toEqual(Array.from(before));
      // a slice scored by each new worker: not dying in a row any more
      expect(pool.status().workers.map((w) => [w.state, w.deaths])).toEqual([
        ['ready', 0],
        ['ready', 0],
      ]);
      expect(scoreWorkerRestarts() - restartsBefore).toBe(2);
      expect(await metrics.registry.metrics()).toMatch(/^preempt_score_worker_restarts_total 2$/m);
      const died = records.filter((r) => r.msg === 'score worker died; starting a new one');
      expect(died.map((r) => [r.slot, r.err, r.level])).toEqual([
        [0, 'score worker 0 exited (code 1)', 40],
        [1, 'score worker 1 exited (code 1)', 40],
      ]);
      expect(records.filter((r) => r.msg === 'replacement score worker ready').map((r) => r.slot)).toEqual(
        expect.arrayContaining([0, 1]),
      );
    } finally {
      await pool.close();
    }
  });

  it('replaces a worker that crashed with an uncaught error', async () => {
    const x = rows(N, 2);
    const pool = await ScorePool.start(MODEL, 2, predictor.featureCount);
    try {
      const before = await pool.score(x, N);
      const inFlight = pool.score(x, N);
      pool.crashWorkerForTest(1);
      await expect(inFlight).rejects.toThrow(
        'score worker 1 crashed: score worker crash requested by a test',
      );
      await eventually(
        () => pool.status(),
        (s) => s.restarts === 1 && s.ready === 2,
        'worker 1 replaced',
      );
      // the replacement takes slices: ending the other leaves it alone to score
      await pool.terminateWorkerForTest(0);
      await expect(pool.score(x, N)).resolves.toEqual(before);
    } finally {
      await pool.close();
    }
  });

  it('backs off while replacements keep dying, rejects at once meanwhile, and recovers', async () => {
    const dir = join(testTempDir('pool-backoff'), 'model');
    const gone = `${dir}-gone`;
    cpSync(MODEL, dir, { recursive: true });
    const x = rows(CHUNK_ROWS, 3);
    const { log, records } = capture();
    const pool = await ScorePool.start(dir, 1, predictor.featureCount, { log, restartBaseMs: 50 });
    try {
      const before = await pool.score(x, CHUNK_ROWS);
      renameSync(dir, gone); // every replacement fails to load the model
      await pool.terminateWorkerForTest(0);
      const died = () => records.filter((r) => r.msg === 'score worker died; starting a new one');
      await eventually(died, (d) => d.length >= 3, 'three deaths in a row');
      await expect(pool.score(x, CHUNK_ROWS)).rejects.toThrow(
        'no score worker is running (1 of 1 being replaced)',
      );
      expect(
        died()
          .slice(0, 3)
          .map((r) => [r.deaths, r.restartInMs]),
      ).toEqual([
        [1, 50],
        [2, 100],
        [3, 200],
      ]);
      expect(String(died()[1]?.err)).toMatch(/^score worker 0 failed to load the model: /);

      renameSync(gone, dir);
      await allReady(pool);
      await expect(pool.score(x, CHUNK_ROWS)).resolves.toEqual(before);
      expect(pool.status().workers[0]).toMatchObject({ state: 'ready', deaths: 0 });
    } finally {
      await pool.close();
    }
  });

  it('closing rejects what is in flight and restarts nothing, even with a replacement scheduled', async () => {
    const x = rows(N, 4);
    const pool = await ScorePool.start(MODEL, 2, predictor.featureCount, {
      restartBaseMs: 60_000,
      restartMaxMs: 60_000,
    });
    await pool.terminateWorkerForTest(0);
    await eventually(
      () => pool.status().workers[0],
      (w) => w?.state === 'restarting' && w.restartInMs === 60_000,
      'a replacement scheduled',
    );
    const inFlight = expect(pool.score(x, N)).rejects.toThrow('the score pool was closed');
    await pool.close();
    await inFlight;
    const status = pool.status();
    expect(status.restarts).toBe(0);
    expect(status.workers.map((w) => [w.state, w.restartInMs])).toEqual([
      ['closed', undefined],
      ['closed', undefined],
    ]);
    await expect(pool.score(x, N)).rejects.toThrow('the score pool is closed');
  });

  it("a scorer's probe fails while its pool has no worker, though a small batch still scores in-process", async () => {
    const { log } = capture();
    const scorer = await loadScorer(MODEL, { workers: 1, pool: { log, restartBaseMs: 300 } });
    try {
      await scorer.probe();
      const pool = (scorer as unknown as { pool: ScorePool }).pool;
      await pool.terminateWorkerForTest(0);
      const one = rows(1, 5);
      expect(Array.from(await scorer.score(one, 1))).toEqual(Array.from(predictor.score(one, 1)));
      await expect(scorer.probe()).rejects.toThrow(/no score worker is running/);
      await allReady(pool);
      await scorer.probe();
    } finally {
      await scorer.close();
    }
  });

  it('a replacement worker builds the model its scorer read at the start, not a directory replaced since', async () => {
    const root = testTempDir('pool-model-bytes');
    const dir = join(root, 'model');
    const next = join(root, 'model.next');
    cpSync(MODEL, dir, { recursive: true });
    // NEXT: the same network with every weight zero, its metadata's digests its own (it loads, scores otherwise)
    cpSync(MODEL, next, { recursive: true });
    writeFileSync(
      join(next, 'weights.bin'),
      Buffer.alloc(readFileSync(join(MODEL, 'weights.bin')).byteLength),
    );
    await writeMetadata(next, await readMetadata(next));
    const x = rows(CHUNK_ROWS, 6);
    const { log } = capture();
    const scorer = await loadScorer(dir, { workers: 1, poolMinRows: 1, pool: { log, restartBaseMs: 50 } });
    try {
      const before = await scorer.score(x, CHUNK_ROWS);
      expect(Array.from(before)).toEqual(Array.from(predictor.score(x, CHUNK_ROWS)));
      // training swaps a new model in by rename; the worker that replaces a dead one must not read it
      renameSync(dir, `${dir}.old`);
      renameSync(next, dir);
      const pool = (scorer as unknown as { pool: ScorePool }).pool;
      await pool.terminateWorkerForTest(0);
      await eventually(
        () => pool.status(),
        (s) => s.restarts === 1 && s.ready === 1,
        'the worker replaced',
      );
      expect(Array.from(await scorer.score(x, CHUNK_ROWS))).toEqual(Array.from(before));
      // the swapped-in model does score otherwise (the comparison above is not vacuous)
      const other = await loadScorer(dir, { workers: 0 });
      try {
        expect(Array.from(other.scoreLocal(x, CHUNK_ROWS))).not.toEqual(Array.from(before));
      } finally {
        await other.close();
      }
    } finally {
      await scorer.close();
    }
  });
});
