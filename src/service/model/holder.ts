/**
 * The model a process scores with: loaded at boot from PREEMPT_MODEL_DIR, swapped atomically on reload
 * (in-flight calls finish on the old one, which is closed after), and absent without failing the
 * service: with no usable model preempt runs rules-only, visibly (`/v1/model`, `/readyz`, a metric).
 * A loaded model whose scoring throws counts as not usable too: every `score()` made through `use()` is
 * watched, and from a failure until a probe of the model succeeds (or a reload) the status is rules-only with
 * the error, as the evaluator decides those rows rules-only. A probe (`PdScorer.probe`) scores a row of zeros
 * through every path scoring takes, in-process and the worker pool, so a small batch scored in-process cannot
 * end a failure of the pool. The holder probes every `probeMs` (10 s) while the failure lasts, so a process
 * without scoring traffic (an API process its load balancer took out of rotation on the 503 of `/readyz`)
 * still sees the model recover, and at once after any scoring call that succeeds meanwhile.
 */
import type { Logger } from 'pino';
import { FEATURE_COUNT } from '../../features/schema.js';
import type { ModelInfo, PdScorer } from '../../model/types.js';

export type ScorerLoader = (dir: string) => Promise<PdScorer>;

export interface ScoreFailure {
  /** the latest failure's message */
  message: string;
  /** epoch ms of the first failure of this run */
  since: number;
  /** scoring calls that failed in a row */
  failures: number;
}

export interface ModelStatus {
  /** rules-only: no model loaded, or the latest scoring with it threw (`scoreError`) */
  mode: 'model' | 'rules-only';
  /** the loaded model, if any (also while its scoring fails) */
  info: ModelInfo | undefined;
  dir: string;
  /** why the model is not in use (load or scoring failure), or why the latest reload failed */
  error?: string;
  /** set from a failed scoring with the loaded model until one succeeds or a model is (re)loaded */
  scoreError?: ScoreFailure;
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
  /** what `use()` hands out: `scorer`, with each `score()` outcome recorded */
  watched: PdScorer;
  users: number;
  retired: boolean;
}

export class ModelHolder {
  private slot: Slot | undefined;
  private error: string | undefined;
  private scoreError: ScoreFailure | undefined;
  private loading: Promise<ModelStatus> | undefined;
  /** a reload asked for while `loading` runs: starts when it ends */
  private queued: Promise<ModelStatus> | undefined;
  private probe: NodeJS.Timeout | undefined;
  /** a probe is running */
  private probing = false;

  constructor(
    readonly dir: string,
    private readonly loader: ScorerLoader,
    private readonly log: Logger,
    /** the feature schema hash this process computes; a model trained on another is refused */
    private readonly expectedSchemaHash?: string,
    private readonly onChange?: (status: ModelStatus) => void,
    /** ms between the holder's own probes of a model whose scoring is failing */
    private readonly probeMs = 10_000,
  ) {}

  status(): ModelStatus {
    const s: ModelStatus = {
      mode: this.slot && !this.scoreError ? 'model' : 'rules-only',
      info: this.slot?.scorer.info,
      dir: this.dir,
    };
    const error = this.scoreError ? `scoring failed: ${this.scoreError.message}` : this.error;
    if (error) s.error = error;
    if (this.scoreError) s.scoreError = { ...this.scoreError };
    return s;
  }

  /**
   * (Re)load the model; never throws: a failure keeps the previous model, or rules-only if none. A reload
   * asked for while one is loading runs after it (requests meanwhile join that one), so the status it returns
   * is of a load that started after the request: a reload posted just after a new model was promoted gets
   * the new model, not the load already under way, which may have read the old one.
   */
  reload(): Promise<ModelStatus> {
    if (!this.loading) {
      this.loading = this.doLoad().finally(() => {
        this.loading = undefined;
      });
      return this.loading;
    }
    this.queued ??= this.loading.then(() => {
      this.queued = undefined;
      return this.reload();
    });
    return this.queued;
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
      const slot: Slot = { scorer, watched: scorer, users: 0, retired: false };
      slot.watched = this.watch(slot);
      this.slot = slot;
      this.error = undefined;
      this.scoreError = undefined;
      this.stopProbe();
      if (old) this.retire(old);
      this.log.info(
        {
          version: scorer.info.version,
          backend: scorer.info.backend,
          filesVerified: scorer.info.filesVerified,
        },
        scorer.info.filesVerified
          ? 'model loaded'
          : 'model loaded unverified: its metadata.json records no digests',
      );
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

  /** `slot.scorer` with every `score()` outcome recorded (explain failures do not count: rows keep their pd). */
  private watch(slot: Slot): PdScorer {
    const raw = slot.scorer;
    return {
      get info() {
        return raw.info;
      },
      score: async (matrix, rows) => {
        let pd: Float32Array;
        try {
          pd = await raw.score(matrix, rows);
        } catch (e) {
          this.scored(slot, e instanceof Error ? e : new Error(String(e)));
          throw e;
        }
        // a success after a failure may have taken another path (a small batch in-process while the pool is
        // down): only a probe of every path ends the failure, so probe now
        if (this.scoreError && slot === this.slot) this.probeNow(slot);
        return pd;
      },
      explain: (row, top) => raw.explain(row, top),
      probe: async () => {
        try {
          if (raw.probe) await raw.probe();
          else await raw.score(new Float32Array(FEATURE_COUNT), 1);
        } catch (e) {
          this.scored(slot, e instanceof Error ? e : new Error(String(e)));
          throw e;
        }
        this.scored(slot, undefined);
      },
      close: () => raw.close(),
    };
  }

  private scored(slot: Slot, e: Error | undefined): void {
    // a retired model's outcome says nothing of the one in use
    if (slot !== this.slot) return;
    const version = slot.scorer.info.version;
    if (e) {
      const was = this.scoreError;
      this.scoreError = {
        message: e.message,
        since: was?.since ?? Date.now(),
        failures: (was?.failures ?? 0) + 1,
      };
      if (was) return;
      this.log.warn(
        { version, err: e.message },
        'scoring failed: rules-only until a probe of the model succeeds',
      );
      this.startProbe(slot);
      this.onChange?.(this.status());
    } else if (this.scoreError) {
      this.log.info(
        { version, failures: this.scoreError.failures },
        'scoring works again: the model is in use',
      );
      this.scoreError = undefined;
      this.stopProbe();
      this.onChange?.(this.status());
    }
  }

  /** Probe the model every `probeMs` until a probe succeeds. */
  private startProbe(slot: Slot): void {
    this.stopProbe();
    const timer = setInterval(() => {
      if (slot !== this.slot || !this.scoreError) {
        this.stopProbe();
        return;
      }
      this.probeNow(slot);
    }, this.probeMs);
    timer.unref();
    this.probe = timer;
  }

  /** One probe of `slot`'s model (none while one is running); its outcome is recorded by the watched scorer. */
  private probeNow(slot: Slot): void {
    if (this.probing) return;
    this.probing = true;
    slot.users++;
    void slot.watched
      .probe?.()
      .catch(() => {})
      .finally(() => {
        this.probing = false;
        slot.users--;
        if (slot.retired && slot.users === 0) void slot.scorer.close();
      });
  }

  private stopProbe(): void {
    if (this.probe) clearInterval(this.probe);
    this.probe = undefined;
  }

  private retire(slot: Slot): void {
    slot.retired = true;
    if (slot.users === 0) void slot.scorer.close();
  }

  /**
   * Run `fn` with the current scorer (kept open until `fn` settles); undefined when no model is loaded.
   * A model whose scoring is failing is still used (the next success ends the failure).
   */
  async use<T>(fn: (scorer: PdScorer) => Promise<T>): Promise<T | undefined> {
    const slot = this.slot;
    if (!slot) return undefined;
    slot.users++;
    try {
      return await fn(slot.watched);
    } finally {
      slot.users--;
      if (slot.retired && slot.users === 0) void slot.scorer.close();
    }
  }

  async close(): Promise<void> {
    this.stopProbe();
    await this.queued;
    await this.loading;
    const slot = this.slot;
    this.slot = undefined;
    if (slot) this.retire(slot);
  }
}
