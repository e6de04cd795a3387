/**
 * Audit entries written at most once per name (a decision per job id, an execution per job id): a marker
 * key and the entry are written by one script, and the marker only after the entry, so a write that fails
 * leaves neither and the caller's retry writes it then. A retry after success finds the marker and writes
 * nothing. The entry has the format of `AuditLog.append` (read back by `AuditLog.list`).
 */
import type { Redis } from 'ioredis';
import type { AuditKind } from '../state/audit.js';
import type { Keyspace } from '../state/keys.js';

/** entries kept in the audit stream (approximate trimming), as `AuditLog.append` */
const AUDIT_MAX_ENTRIES = 1_000_000;

/** ms a marker is kept: as long as BullMQ keeps completed job ids (`KEEP_COMPLETED_S` of the producer) */
export const AUDIT_ONCE_KEEP_MS = 7 * 86_400_000;

// KEYS: marker, audit stream. ARGV: marker ttl (ms), maxlen, kind, account, job, data (JSON)
const APPEND_ONCE = `
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
local id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'kind', ARGV[3], 'account', ARGV[4], 'job', ARGV[5], 'data', ARGV[6])
redis.call('SET', KEYS[1], id, 'PX', ARGV[1])
return id`;

/** whether `key` has a Redis Cluster hash tag (a `{...}` with something inside) */
function hasHashTag(key: string): boolean {
  const open = key.indexOf('{');
  return open >= 0 && key.indexOf('}', open + 1) > open + 1;
}

/**
 * The marker of the audit entry named `name` (e.g. `decision:<jobId>`): under the key prefix (deleted
 * with it), and in the audit stream's Redis Cluster slot so that one script may write both. A prefix with
 * a hash tag puts both there already; else the stream's whole name is the marker's tag (assumes a prefix
 * without stray braces).
 */
export function auditMarkerKey(keys: Keyspace, name: string): string {
  return hasHashTag(keys.prefix)
    ? `${keys.prefix}:audit-once:${name}`
    : `${keys.prefix}:audit-once:{${keys.audit}}:${name}`;
}

/**
 * Append an audit entry unless the entry named `name` was appended already (within
 * `AUDIT_ONCE_KEEP_MS`); returns the new entry's id, or null when it existed.
 */
export async function appendAuditOnce(
  redis: Redis,
  keys: Keyspace,
  name: string,
  entry: { kind: AuditKind; account: string; jobId: string; data: Record<string, unknown> },
): Promise<string | null> {
  const id = (await redis.eval(
    APPEND_ONCE,
    2,
    auditMarkerKey(keys, name),
    keys.audit,
    AUDIT_ONCE_KEEP_MS,
    AUDIT_MAX_ENTRIES,
    entry.kind,
    entry.account,
    entry.jobId,
    JSON.stringify(entry.data),
  )) as string | null;
  return id ?? null;
}
