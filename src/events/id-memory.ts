/**
 * The event ids a stream has seen, for recognising a resent event (the spec: an event whose `id` was already
 * seen is a duplicate, ignored and counted).
 *
 * One `Set` cannot hold them: V8 caps a Set at 2^24 (16,777,216) entries and throws "Set maximum size
 * exceeded" past it, which a venue's history of a few weeks reaches (a shard replaying its log would fail
 * at the same entry on every restart). The ids are kept in generations of at most `generationIds` each, in
 * arrival order, and a lookup asks each generation.
 *
 * With a finite `windowMs` (event time, the shards' `PREEMPT_SHARD_ID_WINDOW_MS`) memory is bounded too: a new
 * generation starts once the newest event time seen has moved half a window past where it was when the
 * current generation started, and a generation is forgotten once the newest event it holds is more than
 * `windowMs` behind the newest event seen. So an id is remembered for at least `windowMs` of event time after
 * its event, whatever order events come in, and the ids held are those that arrived while the newest event
 * time moved by at most 1.5 windows (a lookup asks about three generations). Events arriving out of order do
 * not split generations (the start is taken from the newest time seen, which never goes back).
 *
 * `forgottenThroughTs` is the newest event time of any generation forgotten: an event stamped at or before it
 * may have had its id forgotten, so it cannot be told from a resend, and the caller must refuse it (the
 * evaluator shards do, `ShardState.apply`, reason `expired`); an event stamped after it is either remembered
 * or new, whatever the window was when the ids were forgotten (it travels with the state, so a restart with
 * another window keeps it). Without a window (files, training) nothing is forgotten.
 */

/** ids per generation: well below V8's 2^24 Set limit */
export const GENERATION_IDS = 1 << 22;

interface Generation {
  ids: Set<string>;
  /** ms, event time: the newest event seen (any generation) when this one started */
  startTs: number;
  /** ms, event time: the newest event whose id this generation holds */
  newestTs: number;
}

/** What `IdMemory.state` saves: every id, oldest generation first, and where each generation ends. */
export interface IdMemoryState {
  /** every id held, in arrival order */
  ids: string[];
  /** ids per generation, in order (absent: one generation, the first state format) */
  generationSizes?: number[];
  /** ms, event time, per generation: the newest event seen when it started, and the newest it holds */
  generationStartTs?: number[];
  generationNewestTs?: number[];
  /** ms of event time an id is remembered for (absent or null: for ever) */
  windowMs?: number | null;
  /** ms: see `IdMemory.forgottenThroughTs` (absent or null: nothing forgotten) */
  forgottenThroughTs?: number | null;
  /** the start times' name in the first windowed format (read when `generationStartTs` is absent) */
  generationOldestTs?: number[];
}

export class IdMemory {
  private gens: Generation[] = [];
  /** ms: the newest event time added */
  private newestTs = Number.NEGATIVE_INFINITY;
  /** ms: the newest event time of any generation forgotten (-Infinity: none) */
  private forgottenTs = Number.NEGATIVE_INFINITY;

  constructor(
    /** ms of event time an id is remembered for at least; Infinity: for ever */
    readonly windowMs = Number.POSITIVE_INFINITY,
    /** ids per generation (tests use a small one) */
    readonly generationIds = GENERATION_IDS,
  ) {
    if (!(windowMs > 0)) throw new RangeError(`id window ${windowMs} ms is not positive`);
    if (!(Number.isInteger(generationIds) && generationIds > 0 && generationIds <= GENERATION_IDS))
      throw new RangeError(`ids per generation ${generationIds} is not in 1..${GENERATION_IDS}`);
  }

  /** ids held now */
  get size(): number {
    let n = 0;
    for (const g of this.gens) n += g.ids.size;
    return n;
  }

  /**
   * ms, event time: the newest event of any generation forgotten; an event stamped at or before it may have
   * had its id forgotten (-Infinity: nothing was)
   */
  get forgottenThroughTs(): number {
    return this.forgottenTs;
  }

  /** ms, event time: the newest event whose id was added (-Infinity: none) */
  get newestAddedTs(): number {
    return this.newestTs;
  }

  /** generations held now */
  get generations(): number {
    return this.gens.length;
  }

  has(id: string): boolean {
    const gens = this.gens;
    // newest first: a resend usually follows its original closely
    for (let k = gens.length - 1; k >= 0; k--) if ((gens[k] as Generation).ids.has(id)) return true;
    return false;
  }

  /** Remember `id` of an event at `ts` (epoch ms); forget the generations the window has passed. */
  add(id: string, ts: number): void {
    if (ts > this.newestTs) this.newestTs = ts;
    let cur = this.gens[this.gens.length - 1];
    if (
      !cur ||
      cur.ids.size >= this.generationIds ||
      (Number.isFinite(this.windowMs) && this.newestTs - cur.startTs >= this.windowMs / 2)
    ) {
      cur = { ids: new Set(), startTs: this.newestTs, newestTs: ts };
      this.gens.push(cur);
    }
    cur.ids.add(id);
    if (ts > cur.newestTs) cur.newestTs = ts;
    this.forget();
  }

  private forget(): void {
    if (!Number.isFinite(this.windowMs)) return;
    const horizon = this.newestTs - this.windowMs;
    let drop = 0;
    while (drop < this.gens.length - 1 && (this.gens[drop] as Generation).newestTs < horizon) {
      const t = (this.gens[drop] as Generation).newestTs;
      if (t > this.forgottenTs) this.forgottenTs = t;
      drop++;
    }
    if (drop > 0) this.gens.splice(0, drop);
  }

  state(): IdMemoryState {
    const ids: string[] = [];
    for (const g of this.gens) for (const id of g.ids) ids.push(id);
    return {
      ids,
      generationSizes: this.gens.map((g) => g.ids.size),
      generationStartTs: this.gens.map((g) => g.startTs),
      generationNewestTs: this.gens.map((g) => g.newestTs),
      windowMs: Number.isFinite(this.windowMs) ? this.windowMs : null,
      forgottenThroughTs: Number.isFinite(this.forgottenTs) ? this.forgottenTs : null,
    };
  }

  /**
   * The memory `s` describes. A state of the first format (ids only) becomes generations of the given size
   * stamped `legacyTs` (the restoring pipeline's newest event time): remembered one window from there.
   * Yields to the event loop as `pace` says (one unit per id).
   */
  static async fromState(
    s: IdMemoryState,
    opts: { legacyTs?: number; generationIds?: number } = {},
    pace?: { count(n?: number): boolean; pause(): Promise<void> },
  ): Promise<IdMemory> {
    const window = s.windowMs === null || s.windowMs === undefined ? Number.POSITIVE_INFINITY : s.windowMs;
    const m = new IdMemory(window, opts.generationIds ?? GENERATION_IDS);
    const starts = s.generationStartTs ?? s.generationOldestTs;
    const sizes = s.generationSizes ?? [];
    const total = sizes.reduce((a, b) => a + b, 0);
    if (s.generationSizes) {
      if (!sizes.every((n) => Number.isInteger(n) && n > 0))
        throw new RangeError('id memory state: a generation size is not a whole number above 0');
      if (total !== s.ids.length)
        throw new RangeError(`id memory state: generations hold ${total} ids, the list ${s.ids.length}`);
      if (starts?.length !== sizes.length || s.generationNewestTs?.length !== sizes.length)
        throw new RangeError(
          `id memory state: ${sizes.length} generations but ${starts?.length ?? 0} start and ${s.generationNewestTs?.length ?? 0} newest times`,
        );
    }
    const legacy = opts.legacyTs ?? Number.NEGATIVE_INFINITY;
    let i = 0;
    const push = (startTs: number, newestTs: number): Generation => {
      const g = { ids: new Set<string>(), startTs, newestTs };
      m.gens.push(g);
      return g;
    };
    if (s.generationSizes) {
      for (let k = 0; k < sizes.length; k++) {
        const g = push(starts?.[k] as number, s.generationNewestTs?.[k] as number);
        for (const end = i + (sizes[k] as number); i < end; i++) {
          g.ids.add(s.ids[i] as string);
          if (pace?.count(1)) await pace.pause();
        }
      }
    } else {
      let g: Generation | undefined;
      for (; i < s.ids.length; i++) {
        if (!g || g.ids.size >= m.generationIds) g = push(legacy, legacy);
        g.ids.add(s.ids[i] as string);
        if (pace?.count(1)) await pace.pause();
      }
    }
    for (const g of m.gens) if (g.newestTs > m.newestTs) m.newestTs = g.newestTs;
    if (typeof s.forgottenThroughTs === 'number') m.forgottenTs = s.forgottenThroughTs;
    return m;
  }
}
