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
