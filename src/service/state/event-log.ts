/**
 * The event log: accepted events appended to one Redis stream by a single atomic script that also
 * de-duplicates ids (a marker key per id, expiring after the dedup window) and enforces the spec's
 * stateful rule (an event naming a symbol needs its `instrument` declared first) against the declared
 * set shared by every API process. Either the whole batch is written or, in partial mode, exactly the
 * events that pass; nothing else changes.
 */
import type { Redis } from 'ioredis';
import { type CanonicalEvent, eventSymbol } from '../../events/schema.js';
import type { Keyspace } from './keys.js';

// KEYS: stream, instruments, then one dedup key per event that has an id (KEYS index given per event)
// ARGV: ttlMs, partial (0/1), n, then per event: json, idKeyIndex (0 = no id), symbol it names ('' = none),
//       symbol it declares ('' = not an instrument)
const APPEND = `
local ttl = tonumber(ARGV[1])
local partial = ARGV[2] == '1'
local n = tonumber(ARGV[3])
local status = {}
local declared = {}
local seen = {}
for i = 1, n do
  local base = 3 + (i - 1) * 4
  local idk = tonumber(ARGV[base + 2])
  local sym = ARGV[base + 3]
  local decl = ARGV[base + 4]
  local st = 'ok'
  if idk > 0 and (seen[KEYS[idk]] or redis.call('EXISTS', KEYS[idk]) == 1) then st = 'dup' end
  if st == 'ok' and sym ~= '' and not declared[sym] and redis.call('SISMEMBER', KEYS[2], sym) == 0 then
    if not partial then return {'undeclared', i - 1} end
    st = 'undeclared'
  end
  if st == 'ok' then
    -- only an accepted event takes its id: a rejected one leaves it free for a valid resend
    if idk > 0 then seen[KEYS[idk]] = true end
    if decl ~= '' then declared[decl] = true end
  end
  status[i] = st
end
local out = {'ok'}
for i = 1, n do
  local base = 3 + (i - 1) * 4
  if status[i] == 'ok' then
    local id = redis.call('XADD', KEYS[1], '*', 'e', ARGV[base + 1])
    local idk = tonumber(ARGV[base + 2])
    if idk > 0 then redis.call('SET', KEYS[idk], id, 'PX', ttl) end
    local decl = ARGV[base + 4]
    if decl ~= '' then redis.call('SADD', KEYS[2], decl) end
    out[#out + 1] = id
  else
    out[#out + 1] = status[i]
  end
end
return out`;

export type AppendStatus =
  | { kind: 'appended'; streamId: string }
  | { kind: 'duplicate' }
  | { kind: 'undeclared' };

export type AppendResult =
  | { ok: true; statuses: AppendStatus[] }
  /** whole-batch mode: nothing written; `index` is the first event naming an undeclared symbol */
  | { ok: false; index: number; symbol: string };

export interface AppendOptions {
  /** ms an id is remembered */
  dedupTtlMs: number;
  /** write the valid events and report the others, instead of writing nothing */
  partial: boolean;
}

export async function appendEvents(
  redis: Redis,
  keys: Keyspace,
  events: readonly CanonicalEvent[],
  opts: AppendOptions,
): Promise<AppendResult> {
  if (events.length === 0) return { ok: true, statuses: [] };
  const keyList = [keys.stream, keys.instruments];
  const argv: (string | number)[] = [opts.dedupTtlMs, opts.partial ? 1 : 0, events.length];
  for (const ev of events) {
    let idIndex = 0;
    if (ev.id !== undefined) {
      keyList.push(keys.eventId(ev.id));
      idIndex = keyList.length;
    }
    argv.push(JSON.stringify(ev), idIndex, eventSymbol(ev) ?? '', ev.type === 'instrument' ? ev.symbol : '');
  }
  // the arguments as one array: spread into the call, 5 values per event overflowed the call stack at about
  // 25,000 events (a 500 for a batch under the documented limit)
  const reply = (await redis.call('EVAL', [APPEND, keyList.length, ...keyList, ...argv])) as (
    | string
    | number
  )[];
  if (reply[0] === 'undeclared') {
    const index = Number(reply[1]);
    const ev = events[index];
    return { ok: false, index, symbol: (ev && eventSymbol(ev)) ?? '' };
  }
  const statuses: AppendStatus[] = reply.slice(1).map((r) => {
    if (r === 'dup') return { kind: 'duplicate' };
    if (r === 'undeclared') return { kind: 'undeclared' };
    return { kind: 'appended', streamId: String(r) };
  });
  return { ok: true, statuses };
}

/** Decode one stream entry's fields (`e` holds the event JSON). */
export function decodeEntry(fields: string[]): CanonicalEvent | undefined {
  for (let i = 0; i + 1 < fields.length; i += 2)
    if (fields[i] === 'e') return JSON.parse(fields[i + 1] as string) as CanonicalEvent;
  return undefined;
}

/** Entries of the log not yet delivered to each shard's consumer group (Redis 7 `lag`), by shard. */
export async function shardBacklogs(redis: Redis, keys: Keyspace): Promise<Map<number, number>> {
  const out = new Map<number, number>();
  let groups: unknown[][];
  try {
    groups = (await redis.xinfo('GROUPS', keys.stream)) as unknown[][];
  } catch {
    return out; // no log yet
  }
  for (const g of groups) {
    const f = new Map<string, unknown>();
    for (let i = 0; i + 1 < g.length; i += 2) f.set(String(g[i]), g[i + 1]);
    const m = /^evaluator-s(\d+)$/.exec(String(f.get('name')));
    const lag = f.get('lag');
    if (m?.[1] && typeof lag === 'number') out.set(Number(m[1]), lag);
  }
  return out;
}

/** Compare two stream ids (`ms-seq`). */
export function compareIds(a: string, b: string): number {
  const [am = 0, as = 0] = a.split('-').map(Number);
  const [bm = 0, bs = 0] = b.split('-').map(Number);
  return am - bm || as - bs;
}

/**
 * Where a consumer group stands (created at the log's start if new): the last entry delivered to any of
 * its consumers, and the delivered entries nobody acknowledged (a dead consumer's unfinished work).
 */
export async function groupPosition(
  redis: Redis,
  keys: Keyspace,
  group: string,
): Promise<{ lastDelivered: string; pending: Set<string> }> {
  try {
    await redis.xgroup('CREATE', keys.stream, group, '0', 'MKSTREAM');
  } catch (e) {
    if (!String((e as Error).message).includes('BUSYGROUP')) throw e;
  }
  let lastDelivered = '0-0';
  for (const g of (await redis.xinfo('GROUPS', keys.stream)) as unknown[][]) {
    const m = new Map<string, unknown>();
    for (let i = 0; i + 1 < g.length; i += 2) m.set(String(g[i]), g[i + 1]);
    if (m.get('name') === group) lastDelivered = String(m.get('last-delivered-id'));
  }
  if (lastDelivered === '0-0') return { lastDelivered, pending: new Set() };
  const rows = (await redis.xpending(keys.stream, group, '-', '+', 1_000_000)) as [string, ...unknown[]][];
  return { lastDelivered, pending: new Set(rows.map((p) => p[0])) };
}

/** The log from its start up to `end` (inclusive), in pages of `[id, fields]`. */
export async function* pagesUpTo(
  redis: Redis,
  keys: Keyspace,
  end: string,
  pageSize = 2000,
): AsyncGenerator<[string, string[]][]> {
  let start = '-';
  for (;;) {
    const page = (await redis.xrange(keys.stream, start, end, 'COUNT', pageSize)) as [string, string[]][];
    if (page.length > 0) yield page;
    const last = page[page.length - 1];
    if (page.length < pageSize || !last) return;
    start = `(${last[0]}`;
  }
}
