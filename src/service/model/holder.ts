/**
 * The model a process scores with: loaded at boot from PREEMPT_MODEL_DIR, swapped atomically on reload
 * (in-flight calls finish on the old one, which is closed after), and absent without failing the
 * service: with no usable model preempt runs rules-only, visibly (`/v1/model`, `/readyz`, a metric).
 */
import type { Logger } from 'pino';
import type { ModelInfo, PdScorer } from '../../model/types.js';

export type ScorerLoader = (dir: string) => Promise<PdScorer>;

export interface ModelStatus {
  mode: 'model' | 'rules-only';
  info: ModelInfo | undefined;
  dir: string;
  error?: string;
}

export class ModelUnavailableError extends Error {
  readonly code = 'MODEL_UNAVAILABLE';
}

/** The lead's `loadScorer` (src/model/scorer.ts), resolved at run time so this module builds before it exists. */
export const defaultLoader: ScorerLoader = async (dir) => {
  const specifier = '../../model/scorer.js';
  let mod: { loadScorer?: ScorerLoader };
  try {
    mod = (await import(specifier)) as { loadScorer?: ScorerLoader };
  } catch (e) {
    throw new ModelUnavailableError(
      `the scorer module is not available: ${(e as Error).message.split('\n')[0]}`,
    );
  }
  if (typeof mod.loadScorer !== 'function')
    throw new ModelUnavailableError('src/model/scorer.ts exports no loadScorer');
  return mod.loadScorer(dir);
};

interface Slot {
  scorer: PdScorer;
  users: number;
  retired: boolean;
}

export class ModelHolder {
  private slot: Slot | undefined;
  private error: string | undefined;
  private loading: Promise<ModelStatus> | undefined;

  constructor(
    readonly dir: string,
    private readonly loader: ScorerLoader,
    private readonly log: Logger,
    /** the feature schema hash this process computes; a model trained on another is refused */
    private readonly expectedSchemaHash?: string,
    private readonly onChange?: (status: ModelStatus) => void,
  ) {}

  status(): ModelStatus {
    const s: ModelStatus = {
      mode: this.slot ? 'model' : 'rules-only',
      info: this.slot?.scorer.info,
      dir: this.dir,
    };
    if (this.error) s.error = this.error;
    return s;
  }

  /** (Re)load the model; never throws: a failure keeps the previous model, or rules-only if none. */
  reload(): Promise<ModelStatus> {
    this.loading ??= this.doLoad().finally(() => {
      this.loading = undefined;
    });
    return this.loading;
  }

  private async doLoad(): Promise<ModelStatus> {
    try {
      const scorer = await this.loader(this.dir);
      const want = this.expectedSchemaHash;
      if (want && scorer.info.schemaHash !== want) {
        await scorer.close();
        throw new ModelUnavailableError(
          `model in ${this.dir} was trained on feature schema ${scorer.info.schemaHash}, this build computes ${want}`,
        );
      }
      const old = this.slot;
      this.slot = { scorer, users: 0, retired: false };
      this.error = undefined;
      if (old) this.retire(old);
      this.log.info({ version: scorer.info.version, backend: scorer.info.backend }, 'model loaded');
    } catch (e) {
      this.error = (e as Error).message;
      this.log.warn(
        { dir: this.dir, reason: this.error },
        this.slot ? 'model reload failed; keeping the previous model' : 'no model: rules-only',
      );
    }
    const status = this.status();
    this.onChange?.(status);
    return status;
  }

  private retire(slot: Slot): void {
    slot.retired = true;
    if (slot.users === 0) void slot.scorer.close();
  }

  /** Run `fn` with the current scorer (kept open until `fn` settles); undefined when rules-only. */
  async use<T>(fn: (scorer: PdScorer) => Promise<T>): Promise<T | undefined> {
    const slot = this.slot;
    if (!slot) return undefined;
    slot.users++;
    try {
      return await fn(slot.scorer);
    } finally {
      slot.users--;
      if (slot.retired && slot.users === 0) void slot.scorer.close();
    }
  }

  async close(): Promise<void> {
    await this.loading;
    const slot = this.slot;
    this.slot = undefined;
    if (slot) this.retire(slot);
  }
}
