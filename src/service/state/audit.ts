/**
 * The audit trail: one Redis stream of every decision that produced a job, every reduce-only restriction
 * change, every execution and failure, and the margin after the fills were applied. Entries of one action share its job id.
 */
import type { Redis } from 'ioredis';
import type { Keyspace } from './keys.js';

export type AuditKind = 'decision' | 'restriction' | 'execution' | 'failure' | 'settled';

export interface AuditEntry {
  id: string;
  kind: AuditKind;
  account: string;
  jobId: string;
  data: Record<string, unknown>;
}

/** entries kept (approximate trimming) */
const MAX_ENTRIES = 1_000_000;

/** ms a once-marker is kept: as long as BullMQ keeps completed job ids (`KEEP_COMPLETED_S` of the producer) */
export const AUDIT_ONCE_KEEP_MS = 7 * 86_400_000;

// KEYS: marker, audit stream. ARGV: marker ttl (ms), maxlen, kind, account, job, data (JSON)
// the marker is set only after the entry, so a write that fails leaves neither and a retry writes it then
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

export class AuditLog {
  constructor(
    private readonly redis: Redis,
    private readonly keys: Keyspace,
  ) {}

  async append(
    kind: AuditKind,
    account: string,
    jobId: string,
    data: Record<string, unknown>,
  ): Promise<string> {
    const id = await this.redis.xadd(
      this.keys.audit,
      'MAXLEN',
      '~',
      MAX_ENTRIES,
      '*',
      'kind',
      kind,
      'account',
      account,
      'job',
      jobId,
      'data',
      JSON.stringify(data),
    );
    return id ?? '';
  }

  /**
   * Append an entry unless the entry named `name` was appended already (within `AUDIT_ONCE_KEEP_MS`): a
   * decision or an execution per job id, however often its writer is retried. Returns the new entry's id,
   * or null when it existed.
   */
  async appendOnce(
    name: string,
    kind: AuditKind,
    account: string,
    jobId: string,
    data: Record<string, unknown>,
  ): Promise<string | null> {
    const id = (await this.redis.eval(
      APPEND_ONCE,
      2,
      auditMarkerKey(this.keys, name),
      this.keys.audit,
      AUDIT_ONCE_KEEP_MS,
      MAX_ENTRIES,
      kind,
      account,
      jobId,
      JSON.stringify(data),
    )) as string | null;
    return id ?? null;
  }

  /** Newest first; `before` pages backwards; `account` filters (scanning at most 20 pages of `limit`). */
  async list(opts: {
    limit: number;
    before?: string;
    account?: string;
  }): Promise<{ items: AuditEntry[]; next: string | null }> {
    const items: AuditEntry[] = [];
    let end = opts.before ? `(${opts.before}` : '+';
    let next: string | null = null;
    for (let page = 0; page < (opts.account ? 20 : 1); page++) {
      const rows = await this.redis.xrevrange(this.keys.audit, end, '-', 'COUNT', opts.limit);
      for (const [id, fields] of rows) {
        const e = decode(id, fields);
        if (!opts.account || e.account === opts.account) items.push(e);
        if (items.length >= opts.limit) return { items, next: id };
      }
      if (rows.length < opts.limit) return { items, next: null };
      const last = rows[rows.length - 1];
      next = last ? last[0] : null;
      end = `(${next}`;
    }
    return { items, next };
  }
}

function decode(id: string, fields: string[]): AuditEntry {
  const m = new Map<string, string>();
  for (let i = 0; i + 1 < fields.length; i += 2) m.set(fields[i] as string, fields[i + 1] as string);
  return {
    id,
    kind: (m.get('kind') ?? 'decision') as AuditKind,
    account: m.get('account') ?? '',
    jobId: m.get('job') ?? '',
    data: JSON.parse(m.get('data') ?? '{}') as Record<string, unknown>,
  };
}
