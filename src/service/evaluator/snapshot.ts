/**
 * Snapshots of a shard's state: `ShardState.saveState()` (every field, maps in iteration order, floats
 * as their exact bits) serialised with node:v8 (structured clone: NaN, -0, Infinity, typed arrays and map
 * order survive) and gzip-compressed (its CRC32 catches a corrupted payload). The metadata, kept apart so
 * that a trimmer reads it without the payload, names the format version, the shard, the shard count, the
 * policy config and the feature parameters the state was built under, and the log entry it describes.
 * A restore refuses a snapshot whose metadata differs from the evaluator's own (see `refusal`). A decode
 * yields to the event loop as it goes, and its caller can abandon it at any yield (`DecodeControl`).
 */
import { createHash } from 'node:crypto';
import { promisify } from 'node:util';
import { deserialize, serialize } from 'node:v8';
import { gunzip, gzip } from 'node:zlib';
import { Pacer } from '../../features/pace.js';
import { FEATURE_PARAMS } from '../../features/schema.js';
import type { PolicyConfig } from '../../margin/index.js';
import { compareIds } from '../state/event-log.js';
import { ShardState, type ShardStateData } from './shard-state.js';

const gzipAsync = promisify(gzip);
const gunzipAsync = promisify(gunzip);

export const SNAPSHOT_FORMAT = 'preempt-shard-snapshot';
/**
 * Bump when what `ShardState.saveState` holds, or how an event changes that state, changes: a snapshot of
 * a version this evaluator does not read is refused (a full replay, or a visible failure on a trimmed log).
 * Version 2 (2026-12-06): the event-id memory keeps market ids only at the newest market time and forgets
 * account ids after a window, so an evaluator of version 1 restoring it would miss resends it no longer
 * holds: it must refuse it (a rollback replays the log). Version 1 snapshots are still read (their market
 * ids are asked until they age out).
 * Version 3 (2026-12-06): the indicators are rebased every REBASE_CANDLES candles and a snapshot keeps only the
 * candles since the last rebase's window (with the index of the first, `indicatorInputsFrom`). An evaluator of
 * version 2 (no rebasing) would restore the same values from them but, never rebasing, drift from a replay of
 * the log under its own code (float noise, and RSI in a long flat market): not exact, so it must refuse them.
 * Versions 1 and 2 kept every candle: they are read as a series from its first candle (re-fed under the
 * rebase schedule, the same state as a series that never stopped).
 */
export const SNAPSHOT_VERSION = 3;
/** the versions this evaluator restores */
export const SNAPSHOT_VERSIONS_READ: readonly number[] = [1, 2, 3];

/** sha256 of the feature parameters the state's windows and candles are built with */
export const STATE_PARAMS_HASH = createHash('sha256').update(JSON.stringify(FEATURE_PARAMS)).digest('hex');

/** sha256 of a policy config (keys sorted): policy memory and restrictions depend on it */
export function policyHash(policy: PolicyConfig): string {
  const sorted = Object.fromEntries(Object.entries(policy).sort(([a], [b]) => (a < b ? -1 : 1)));
  return createHash('sha256').update(JSON.stringify(sorted)).digest('hex');
}

export interface SnapshotMeta {
  format: string;
  version: number;
  shard: number;
  shards: number;
  policyHash: string;
  paramsHash: string;
  /** the state is the log applied up to this entry (a committed position) */
  entry: string;
  /** entries of the log up to `entry` (the group's ENTRIESREAD there) */
  entriesRead: number;
  /** ms, wall clock */
  takenAtMs: number;
  /** the model the shard decided with when it was taken (informational: not checked) */
  modelVersion: string | null;
  /** bytes of the v8 serialisation, before compression */
  rawBytes: number;
  /** bytes stored (gzip) */
  bytes: number;
}

/** What a restoring evaluator expects of a snapshot. */
export interface SnapshotExpect {
  shard: number;
  shards: number;
  policyHash: string;
}

/**
 * The arrays of a saved state that grow with the accounts and the events (ids seen, accounts, policy memory,
 * epochs, restrictions): serialised in chunks of `CHUNK` elements, one v8 frame each, with a turn of the event
 * loop between frames, so that neither serialising nor deserialising a large state is one long synchronous
 * call. The rest of the state is one frame.
 */
const CHUNKED: readonly (readonly string[])[] = [
  ['pipeline', 'gate', 'seenIds'],
  ['pipeline', 'features', 'ids'],
  ['pipeline', 'features', 'book', 'accounts'],
  ['memory'],
  ['epochs'],
  ['restrictions'],
];
const CHUNK = 50_000;
/** the framed payload starts with this (a plain v8 serialisation, the first payloads, starts with 0xff) */
const FRAMED = Buffer.from('PSF1');

const turn = (): Promise<void> => new Promise<void>((r) => setImmediate(r));

/** How far a decode went. */
export interface DecodeProgress {
  /** turns of the event loop it yielded: between chunks, then while candles and ids are re-fed */
  yields: number;
  /** chunks of the growing arrays deserialised */
  chunks: number;
  /** chunks the payload holds (0 until its counts are read, and for a payload of the first format) */
  chunksTotal: number;
}

/** How a caller stops a decode (`decodeSnapshot`, `deserialiseState`) part-way, and watches it. */
export interface DecodeControl {
  /**
   * checked before and after decompressing and after every yield: true abandons the decode there (it
   * throws `DecodeStoppedError`, returning nothing), so a stop waits for one chunk, not the whole state
   */
  isStopped?: () => boolean;
  /** called after every yield, before `isStopped` is checked, with the progress so far (tests) */
  onYield?: (progress: Readonly<DecodeProgress>) => void;
}

/** A decode abandoned because its caller stopped (`DecodeControl.isStopped`): no state came of it. */
export class DecodeStoppedError extends Error {
  readonly code = 'DECODE_STOPPED';
  constructor(readonly progress: Readonly<DecodeProgress>) {
    super(
      `snapshot decode stopped after ${progress.chunks} of ${progress.chunksTotal} chunks (${progress.yields} yields)`,
    );
  }
}

/** The yields of one decode: counted, reported and checked for a stop. */
class DecodeTurns {
  readonly progress: DecodeProgress = { yields: 0, chunks: 0, chunksTotal: 0 };

  constructor(private readonly control: DecodeControl) {}

  /** Throws `DecodeStoppedError` once the caller stopped. */
  check(): void {
    if (this.control.isStopped?.()) throw new DecodeStoppedError({ ...this.progress });
  }

  /** After a yield: count it, report it, check for a stop. */
  yielded(): void {
    this.progress.yields++;
    this.control.onYield?.({ ...this.progress });
    this.check();
  }

  async turn(): Promise<void> {
    await turn();
    this.yielded();
  }
}

/** The pacer of a state restore (every 4096 candles re-fed or ids re-added) whose yields are the decode's. */
class DecodePacer extends Pacer {
  constructor(private readonly turns: DecodeTurns) {
    super();
  }

  override async pause(): Promise<void> {
    await super.pause();
    this.turns.yielded();
  }
}

function parentOf(root: unknown, path: readonly string[]): Record<string, unknown[]> {
  let o = root as Record<string, unknown>;
  for (const k of path.slice(0, -1)) o = o[k] as Record<string, unknown>;
  return o as Record<string, unknown[]>;
}

/**
 * `s` (a private copy, from `saveState`: its big arrays are detached) as framed v8: 'PSF1', then frames
 * (u32 length, bytes): the state without its big arrays, the chunk counts, then the chunks.
 */
export async function serialiseState(s: ShardStateData, chunk = CHUNK): Promise<Buffer> {
  const big = CHUNKED.map((path) => {
    const parent = parentOf(s, path);
    const key = path[path.length - 1]!;
    const arr = parent[key] ?? [];
    parent[key] = [];
    return arr;
  });
  const frames: Buffer[] = [serialize(s), serialize(big.map((a) => Math.ceil(a.length / chunk)))];
  for (const arr of big)
    for (let i = 0; i < arr.length; i += chunk) {
      await turn();
      frames.push(serialize(arr.slice(i, i + chunk)));
    }
  const out: Buffer[] = [FRAMED];
  for (const f of frames) {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(f.length);
    out.push(len, f);
  }
  return Buffer.concat(out);
}

/**
 * The state `serialiseState` (or a plain v8 serialisation, the first format) wrote, a frame per turn; with
 * `control`, abandoned at a yield once its caller stops (`DecodeStoppedError`).
 */
export async function deserialiseState(raw: Buffer, control: DecodeControl = {}): Promise<ShardStateData> {
  return readState(raw, new DecodeTurns(control));
}

async function readState(raw: Buffer, turns: DecodeTurns): Promise<ShardStateData> {
  if (!raw.subarray(0, FRAMED.length).equals(FRAMED)) return deserialize(raw) as ShardStateData;
  let o = FRAMED.length;
  const next = (): unknown => {
    if (o + 4 > raw.length) throw new RangeError('snapshot payload: truncated frame');
    const len = raw.readUInt32BE(o);
    if (o + 4 + len > raw.length) throw new RangeError('snapshot payload: truncated frame');
    const v = deserialize(raw.subarray(o + 4, o + 4 + len));
    o += 4 + len;
    return v;
  };
  const s = next() as ShardStateData;
  const counts = next() as number[];
  if (!Array.isArray(counts) || counts.length !== CHUNKED.length)
    throw new RangeError('snapshot payload: bad chunk counts');
  turns.progress.chunksTotal = counts.reduce((a, b) => a + b, 0);
  for (const [k, path] of CHUNKED.entries()) {
    const arr: unknown[] = [];
    for (let c = 0; c < counts[k]!; c++) {
      await turns.turn();
      for (const x of next() as unknown[]) arr.push(x);
      turns.progress.chunks++;
    }
    parentOf(s, path)[path[path.length - 1]!] = arr;
  }
  if (o !== raw.length) throw new RangeError('snapshot payload: trailing bytes');
  return s;
}

/**
 * Compress the state now (the copy is taken synchronously, before this returns its promise; serialising
 * and compressing it then take turns with the event loop).
 */
export async function encodeSnapshot(
  state: ShardState,
  at: { entry: string; entriesRead: number; modelVersion: string | null; policyHash: string; now?: number },
): Promise<{ meta: SnapshotMeta; data: Buffer }> {
  const raw = await serialiseState(state.saveState());
  const data = await gzipAsync(raw);
  return {
    meta: {
      format: SNAPSHOT_FORMAT,
      version: SNAPSHOT_VERSION,
      shard: state.shard,
      shards: state.shards,
      policyHash: at.policyHash,
      paramsHash: STATE_PARAMS_HASH,
      entry: at.entry,
      entriesRead: at.entriesRead,
      takenAtMs: at.now ?? Date.now(),
      modelVersion: at.modelVersion,
      rawBytes: raw.length,
      bytes: data.length,
    },
    data,
  };
}

/** Why a snapshot with this metadata cannot be used (undefined: it can). */
export function refusal(meta: Partial<SnapshotMeta> | undefined, want: SnapshotExpect): string | undefined {
  if (!meta) return 'no snapshot';
  if (
    meta.format !== SNAPSHOT_FORMAT ||
    typeof meta.version !== 'number' ||
    !SNAPSHOT_VERSIONS_READ.includes(meta.version)
  )
    return `format ${String(meta.format)} v${String(meta.version)}, this evaluator reads ${SNAPSHOT_FORMAT} v${SNAPSHOT_VERSIONS_READ.join(', v')}`;
  if (meta.shard !== want.shard) return `taken by shard ${meta.shard}, not ${want.shard}`;
  if (meta.shards !== want.shards) return `taken with ${meta.shards} shards, now ${want.shards}`;
  if (meta.policyHash !== want.policyHash) return 'taken under another policy config';
  if (meta.paramsHash !== STATE_PARAMS_HASH) return 'taken with other feature parameters';
  if (typeof meta.entry !== 'string' || !/^\d+-\d+$/.test(meta.entry)) return 'no entry id';
  if (typeof meta.entriesRead !== 'number') return 'no entry count';
  return undefined;
}

export function parseMeta(json: string | null | undefined): SnapshotMeta | undefined {
  if (!json) return undefined;
  try {
    return JSON.parse(json) as SnapshotMeta;
  } catch {
    return undefined;
  }
}

/**
 * The state a snapshot holds (throws on a corrupted payload or one of another shard). With `control`, it is
 * abandoned at the first check (before decompressing, after it, then at every yield: between chunks, and
 * while candles and ids are re-fed) after its caller stops: it throws `DecodeStoppedError` and no state
 * comes of it.
 */
export async function decodeSnapshot(
  meta: SnapshotMeta,
  data: Buffer,
  policy: PolicyConfig,
  control: DecodeControl = {},
  /** `idWindowMs`: the restoring evaluator's event-id window (see ShardState) */
  opts: { idWindowMs?: number } = {},
): Promise<ShardState> {
  const turns = new DecodeTurns(control);
  // a stop that came while the payload was read (up to 256 MiB) does not wait for it to be decompressed
  turns.check();
  const raw = await gunzipAsync(data);
  turns.check();
  const s = await readState(raw, turns);
  if (s.shard !== meta.shard || s.shards !== meta.shards)
    throw new Error(
      `snapshot payload is of shard ${s.shard}/${s.shards}, its metadata says ${meta.shard}/${meta.shards}`,
    );
  return await ShardState.restore(s, policy, new DecodePacer(turns), opts);
}

/** True when `a` is at or before `b` (entry ids). */
export function atOrBefore(a: string, b: string): boolean {
  return compareIds(a, b) <= 0;
}
