import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadLayersModel, saveLayersModel } from '../src/tf/fs-io.js';
import { initTf, TfBackendUnavailableError } from '../src/tf/runtime.js';

const dir = mkdtempSync(join(tmpdir(), 'preempt-tf-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('TF.js runtime', () => {
  it('selects the wasm backend on a machine without @tensorflow/tfjs-node', async () => {
    const { backend, tf } = await initTf();
    expect(backend).toBe('wasm');
    expect(tf.getBackend()).toBe('wasm');
  });

  it('fails clearly when the requested backend is unavailable', async () => {
    await expect(initTf('tensorflow')).rejects.toBeInstanceOf(TfBackendUnavailableError);
    await expect(initTf('tensorflow')).rejects.toThrow(/tensorflow.*unavailable/);
    // and the process can still go back to a working backend
    expect((await initTf('wasm')).backend).toBe('wasm');
  });

  it('saves a model to a directory and loads it back predicting identically', async () => {
    const { tf } = await initTf();
    const model = tf.sequential({
      layers: [
        tf.layers.dense({
          units: 8,
          inputShape: [5],
          activation: 'relu',
          kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }),
        }),
        tf.layers.dense({
          units: 1,
          activation: 'sigmoid',
          kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }),
        }),
      ],
    });
    const x = tf.randomNormal([64, 5], 0, 1, 'float32', 7);
    const before = await (model.predict(x, { batchSize: 64 }) as import('@tensorflow/tfjs').Tensor).data();
    const target = join(dir, 'm');
    await saveLayersModel(model, target);
    expect(readdirSync(target).sort()).toEqual(['model.json', 'weights.bin']);
    const loaded = await loadLayersModel(target);
    const after = await (loaded.predict(x, { batchSize: 64 }) as import('@tensorflow/tfjs').Tensor).data();
    expect(Array.from(after)).toEqual(Array.from(before));
    // sanity: the outputs are not all equal (a model that lost its weights would still "match" itself)
    expect(new Set(Array.from(before)).size).toBeGreaterThan(1);
  });
});
