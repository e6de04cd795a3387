/**
 * The one place that chooses the TF.js backend: native `tensorflow` (when the optional
 * @tensorflow/tfjs-node loads) > `wasm` > `cpu`, unless PREEMPT_TF_BACKEND (or the caller) names one,
 * in which case that one or a clear error. Every model, trainer and scorer gets `tf` from here.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { logger } from '../log/logger.js';
import { installTransposedMatMul } from './wasm-transposed-matmul.js';

export type BackendName = 'tensorflow' | 'wasm' | 'cpu';
export const BACKENDS: readonly BackendName[] = ['tensorflow', 'wasm', 'cpu'];

export class TfBackendUnavailableError extends Error {
  readonly code = 'TF_BACKEND_UNAVAILABLE';
}

export interface TfRuntime {
  tf: typeof tf;
  backend: BackendName;
}

const require = createRequire(import.meta.url);
let ready: Promise<TfRuntime> | undefined;
let readyFor: BackendName | undefined;

async function tryNative(): Promise<string | undefined> {
  // A variable specifier keeps TypeScript from needing the optional package's types.
  const specifier = '@tensorflow/tfjs-node';
  try {
    await import(specifier);
    return undefined;
  } catch (e) {
    return (e as Error).message.split('\n')[0];
  }
}

async function tryWasm(): Promise<string | undefined> {
  try {
    const wasm = await import('@tensorflow/tfjs-backend-wasm');
    const dist = join(dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'dist/');
    wasm.setWasmPaths(dist);
    installTransposedMatMul(tf);
    return undefined;
  } catch (e) {
    return (e as Error).message.split('\n')[0];
  }
}

async function activate(name: BackendName): Promise<string | undefined> {
  if (name === 'tensorflow') {
    const why = await tryNative();
    if (why) return `@tensorflow/tfjs-node did not load (${why})`;
  } else if (name === 'wasm') {
    const why = await tryWasm();
    if (why) return `@tensorflow/tfjs-backend-wasm did not load (${why})`;
  }
  try {
    const ok = await tf.setBackend(name);
    if (!ok) return `tf.setBackend('${name}') returned false`;
    await tf.ready();
    return tf.getBackend() === name ? undefined : `active backend is ${tf.getBackend()}`;
  } catch (e) {
    return (e as Error).message;
  }
}

function parseRequested(value: string | undefined): BackendName | undefined {
  if (value === undefined || value === '') return undefined;
  if ((BACKENDS as readonly string[]).includes(value)) return value as BackendName;
  throw new TfBackendUnavailableError(
    `PREEMPT_TF_BACKEND=${value} is not a TF.js backend preempt knows; use one of ${BACKENDS.join(', ')}`,
  );
}

async function select(requested: BackendName | undefined): Promise<TfRuntime> {
  if (requested) {
    const why = await activate(requested);
    if (why)
      throw new TfBackendUnavailableError(
        `TF.js backend '${requested}' was requested but is unavailable: ${why}`,
      );
    logger.info({ backend: requested, requested: true }, 'tf backend selected');
    return { tf, backend: requested };
  }
  const skipped: string[] = [];
  for (const name of BACKENDS) {
    const why = await activate(name);
    if (!why) {
      logger.info({ backend: name, skipped }, 'tf backend selected');
      return { tf, backend: name };
    }
    skipped.push(`${name}: ${why}`);
  }
  throw new TfBackendUnavailableError(`no TF.js backend could start:\n  ${skipped.join('\n  ')}`);
}

/**
 * Initialise TF.js once per process. `backend` overrides PREEMPT_TF_BACKEND; asking again for a
 * different backend than the one running switches to it.
 */
export function initTf(backend?: BackendName): Promise<TfRuntime> {
  const requested = backend ?? parseRequested(process.env.PREEMPT_TF_BACKEND);
  if (!ready || (requested !== undefined && requested !== readyFor)) {
    readyFor = requested;
    ready = select(requested);
    ready.catch(() => {
      ready = undefined;
    });
  }
  return ready;
}

/** Whether this process was started with the flag that keeps WASM kernels at full speed. */
export function wasmTieringDisabled(): boolean {
  return process.execArgv.includes('--no-wasm-dynamic-tiering');
}
