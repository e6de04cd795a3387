/**
 * Snapshots of a shard's state: `ShardState.saveState()` (every field, maps in iteration order, floats
 * as their exact bits) serialised with node:v8 (structured clone: NaN, -0, Infinity, typed arrays and map
 * order survive) and gzip-compressed (its CRC32 catches a corrupted payload). The metadata, kept apart so
 * that a trimmer reads it without the payload, names the format version, the shard, the shard count, the
 * policy config and the feature parameters the state was built under, and the log entry it describes.
 * A restore refuses a snapshot whose metadata differs from the evaluator's own (see `refusal`).
 */
import { createHash } from 'node:crypto';
import { promisify } from 'node:util';
import { deserialize, serialize } from 'node:v8';
import { gunzip, gzip } from 'node:zlib';
import { FEATURE_PARAMS } from '../../features/schema.js';
import type { PolicyConfig } from '../../margin/index.js';
import { compareIds } from '../state/event-log.js';
import { ShardState, type ShardStateData } from './shard-state.js';

const gzipAsync = promisify(gzip);
const gunzipAsync = promisify(gunzip);

export const SNAPSHOT_FORMAT = 'preempt-shard-snapshot';
/**
 * Bump when what `ShardState.saveState` holds, or how an event changes that state, changes: a snapshot of
 * another version is refused (a full replay, or a visible failure on a trimmed log).
 */
export const SNAPSHOT_VERSION = 1;

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

/** Compress the state now (the copy is taken synchronously, before this returns its promise). */
export async function encodeSnapshot(
  state: ShardState,
  at: { entry: string; entriesRead: number; modelVersion: string | null; policyHash: string; now?: number },
): Promise<{ meta: SnapshotMeta; data: Buffer }> {
  const raw = serialize(state.saveState());
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
  if (meta.format !== SNAPSHOT_FORMAT || meta.version !== SNAPSHOT_VERSION)
    return `format ${String(meta.format)} v${String(meta.version)}, this evaluator reads ${SNAPSHOT_FORMAT} v${SNAPSHOT_VERSION}`;
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

/** The state a snapshot holds (throws on a corrupted payload or one of another shard). */
export async function decodeSnapshot(
  meta: SnapshotMeta,
  data: Buffer,
  policy: PolicyConfig,
): Promise<ShardState> {
  const s = deserialize(await gunzipAsync(data)) as ShardStateData;
  if (s.shard !== meta.shard || s.shards !== meta.shards)
    throw new Error(
      `snapshot payload is of shard ${s.shard}/${s.shards}, its metadata says ${meta.shard}/${meta.shards}`,
    );
  return await ShardState.restore(s, policy);
}

/** True when `a` is at or before `b` (entry ids). */
export function atOrBefore(a: string, b: string): boolean {
  return compareIds(a, b) <= 0;
}
