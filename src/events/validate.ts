/**
 * Turning untrusted JSON into canonical events: schema validation with a precise field path, the
 * stateful rules of the spec (an instrument must be declared before an event names it) and duplicate
 * `id`s. The same gate serves the file reader, the HTTP ingest and the simulator's self-check.
 */
import type { z } from 'zod';
import { IdMemory, type IdMemoryState } from './id-memory.js';
import { type CanonicalEvent, EventSchema, eventSymbol } from './schema.js';

export interface EventIssue {
  /** dotted path of the offending field, e.g. `tiers.1.mmr`; `(line)` when the line is not a JSON object */
  field: string;
  reason: string;
}

export class InvalidEventError extends Error {
  readonly code = 'INVALID_EVENT';
  constructor(
    /** 1-based line in a file, or 0-based index in an HTTP batch */
    readonly position: number,
    readonly field: string,
    readonly reason: string,
    readonly positionKind: 'line' | 'index' = 'line',
    /** the file the line is in, when read from one */
    readonly file?: string,
  ) {
    super(`${file === undefined ? '' : `${file}: `}${positionKind} ${position}: field ${field}: ${reason}`);
    this.name = 'InvalidEventError';
  }

  /** The same error, naming the file its line is in. */
  inFile(file: string): InvalidEventError {
    return new InvalidEventError(this.position, this.field, this.reason, this.positionKind, file);
  }
}

function firstIssue(error: z.ZodError): EventIssue {
  const issue = error.issues[0];
  if (!issue) return { field: '(event)', reason: 'invalid' };
  const field = issue.path.length > 0 ? issue.path.map(String).join('.') : '(event)';
  let reason = issue.message;
  if (issue.code === 'invalid_type' && /received undefined/.test(reason))
    reason = 'required field is missing';
  if (issue.code === 'invalid_union' && field === 'type') reason = 'unknown event type';
  return { field, reason };
}

/** Schema-only validation of one decoded JSON value. */
export function parseEvent(raw: unknown): { ok: true; event: CanonicalEvent } | ({ ok: false } & EventIssue) {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
    return { ok: false, field: '(line)', reason: 'not a JSON object' };
  if (!('type' in raw)) return { ok: false, field: 'type', reason: 'required field is missing' };
  const result = EventSchema.safeParse(raw);
  if (result.success) return { ok: true, event: result.data };
  return { ok: false, ...firstIssue(result.error) };
}

export type GateResult =
  | { kind: 'event'; event: CanonicalEvent }
  | { kind: 'duplicate'; event: CanonicalEvent }
  | ({ kind: 'invalid' } & EventIssue);

/**
 * What `EventGate.state` saves (`seenIds` in the first format's place: a gate state of that format is still
 * read; an evaluator of that time refuses a newer snapshot by its version, see SNAPSHOT_VERSION).
 */
export interface EventGateState {
  declared: string[];
  /** every id remembered, in arrival order */
  seenIds: string[];
  /** how the ids split into generations, and the window (absent: the first format, one set kept for ever) */
  idMemory?: Omit<IdMemoryState, 'ids'>;
  /** with `marketIdsAtFrontier`: the newest market event time, ms, and the market-event ids seen at it */
  marketFrontier?: { ts: number; ids: string[] };
  /**
   * ms: restored from a state saved without `marketFrontier` (before it existed), whose id memory holds
   * market ids too: market events are also checked against it until it has forgotten everything up to here
   */
  legacyMarketThroughTs?: number;
}

export interface EventGateOptions {
  /** ms of event time an id is remembered for (default: for ever; see IdMemory) */
  idWindowMs?: number;
  /**
   * Remember a market event's id (one without an `account`) only while no later market event has come: for
   * a stream applied in ts order with no reordering tolerance (the evaluator shards), where a market event
   * stamped before the newest one is refused as late whatever its id, so only a resend at the newest time
   * needs its id. Market events are most of a venue's stream; their ids then cost nothing that grows.
   */
  marketIdsAtFrontier?: boolean;
  /**
   * keep no ids: the events were de-duplicated before (by `readEventsFile`'s own gate), so a second memory of
   * every id of a large file would only double its cost
   */
  idsCheckedUpstream?: boolean;
}

/**
 * Stateful validation across a stream. Nothing is recorded for an invalid event, so a rejected event
 * changes nothing. Memory grows with the number of distinct symbols and ids (see `IdMemory`: past V8's 2^24
 * limit of one Set, and with `idWindowMs` only the ids of that much event time), never with the stream.
 */
export class EventGate {
  private readonly declared = new Set<string>();
  private seenIds: IdMemory;
  private readonly marketIdsAtFrontier: boolean;
  private readonly idsCheckedUpstream: boolean;
  /** ms: the newest market event time seen (with `marketIdsAtFrontier`) */
  private frontierTs = Number.NEGATIVE_INFINITY;
  private frontierIds = new Set<string>();
  /** ms: see EventGateState.legacyMarketThroughTs (-Infinity: none) */
  private legacyMarketThroughTs = Number.NEGATIVE_INFINITY;

  constructor(opts: EventGateOptions = {}) {
    this.seenIds = new IdMemory(opts.idWindowMs ?? Number.POSITIVE_INFINITY);
    this.marketIdsAtFrontier = opts.marketIdsAtFrontier ?? false;
    this.idsCheckedUpstream = opts.idsCheckedUpstream ?? false;
  }

  check(raw: unknown): GateResult {
    const parsed = parseEvent(raw);
    if (!parsed.ok) return { kind: 'invalid', field: parsed.field, reason: parsed.reason };
    return this.checkParsed(parsed.event);
  }

  /** For events already typed (e.g. produced in-process): only the stateful rules. */
  checkParsed(event: CanonicalEvent): GateResult {
    const symbol = eventSymbol(event);
    if (symbol !== undefined && !this.declared.has(symbol))
      return { kind: 'invalid', field: 'symbol', reason: `undeclared instrument "${symbol}"` };
    if (event.id !== undefined && !this.idsCheckedUpstream) {
      if (this.marketIdsAtFrontier && !('account' in event)) {
        if (this.legacyMarketThroughTs > Number.NEGATIVE_INFINITY) {
          // market ids of a state from before the frontier, until the memory has forgotten them all
          if (this.seenIds.forgottenThroughTs >= this.legacyMarketThroughTs)
            this.legacyMarketThroughTs = Number.NEGATIVE_INFINITY;
          else if (this.seenIds.has(event.id)) return { kind: 'duplicate', event };
        }
        if (event.ts > this.frontierTs) {
          this.frontierTs = event.ts;
          this.frontierIds.clear();
        }
        if (event.ts === this.frontierTs) {
          if (this.frontierIds.has(event.id)) return { kind: 'duplicate', event };
          this.frontierIds.add(event.id);
        }
        // older: not remembered, and refused as late by an in-order stream whatever its id
      } else {
        if (this.seenIds.has(event.id)) return { kind: 'duplicate', event };
        this.seenIds.add(event.id, event.ts);
      }
    }
    if (event.type === 'instrument') this.declared.add(event.symbol);
    return { kind: 'event', event };
  }

  isDeclared(symbol: string): boolean {
    return this.declared.has(symbol);
  }

  /**
   * Take back the declaration of an instrument event the stream then refused (late): events on its symbol
   * are invalid again, as if it had never come, rather than passing here and being refused when applied.
   */
  undeclare(symbol: string): void {
    this.declared.delete(symbol);
  }

  hasSeen(id: string): boolean {
    return this.seenIds.has(id) || this.frontierIds.has(id);
  }

  /** ms, event time: an event stamped at or before it may have had its id forgotten (see IdMemory) */
  get idsForgottenThroughTs(): number {
    return this.seenIds.forgottenThroughTs;
  }

  /** ids remembered now */
  get idsRemembered(): number {
    return this.seenIds.size;
  }

  /** A copy of the whole state (for shard snapshots): symbols declared and ids seen, in insertion order. */
  state(): EventGateState {
    const { ids, ...idMemory } = this.seenIds.state();
    return {
      declared: [...this.declared],
      seenIds: ids,
      idMemory,
      ...(this.marketIdsAtFrontier
        ? { marketFrontier: { ts: this.frontierTs, ids: [...this.frontierIds] } }
        : {}),
      ...(Number.isFinite(this.legacyMarketThroughTs)
        ? { legacyMarketThroughTs: this.legacyMarketThroughTs }
        : {}),
    };
  }

  /**
   * The gate `s` describes; yields to the event loop as `pace` says (one unit per id). `legacyTs` (ms): the
   * event time a first-format state's ids are taken to be from (the restoring pipeline's newest event).
   */
  static async fromState(
    s: EventGateState,
    pace?: { count(n?: number): boolean; pause(): Promise<void> },
    opts: { legacyTs?: number } & EventGateOptions = {},
  ): Promise<EventGate> {
    const g = new EventGate(opts.marketIdsAtFrontier ? { marketIdsAtFrontier: true } : {});
    if (s.marketFrontier) {
      g.frontierTs = s.marketFrontier.ts;
      g.frontierIds = new Set(s.marketFrontier.ids);
    }
    for (const d of s.declared) g.declared.add(d);
    g.seenIds = await IdMemory.fromState(
      {
        ...s.idMemory,
        // the restoring process's window (its configuration) over the saved one
        ...(opts.idWindowMs !== undefined ? { windowMs: opts.idWindowMs } : {}),
        ids: s.seenIds,
      },
      opts.legacyTs === undefined ? {} : { legacyTs: opts.legacyTs },
      pace,
    );
    if (typeof s.legacyMarketThroughTs === 'number') g.legacyMarketThroughTs = s.legacyMarketThroughTs;
    else if (opts.marketIdsAtFrontier && !s.marketFrontier && s.seenIds.length > 0)
      g.legacyMarketThroughTs = g.seenIds.newestAddedTs;
    return g;
  }
}
