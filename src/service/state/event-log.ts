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

/** Each shard's consumer group on the log (`XINFO GROUPS` fields by name), by shard; none before the log exists. */
export async function shardGroups(redis: Redis, keys: Keyspace): Promise<Map<number, Map<string, unknown>>> {
  const out = new Map<number, Map<string, unknown>>();
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
    if (m?.[1]) out.set(Number(m[1]), f);
  }
  return out;
}

/**
 * Entries of the log after each shard's committed entry (the Redis 7 `lag` of its consumer group, whose
 * position the evaluator sets with the count of entries read), by shard.
 */
export async function shardBacklogs(redis: Redis, keys: Keyspace): Promise<Map<number, number>> {
  const out = new Map<number, number>();
  for (const [shard, f] of await shardGroups(redis, keys)) {
    const lag = f.get('lag');
    if (typeof lag === 'number') out.set(shard, lag);
  }
  return out;
}

/** Compare two stream ids (`ms-seq`). */
export function compareIds(a: string, b: string): number {
  const [am = 0, as = 0] = a.split('-').map(Number);
  const [bm = 0, bs = 0] = b.split('-').map(Number);
  return am - bm || as - bs;
}

// the shard's position is its consumer group's last-delivered id; `field` reads a RESP2 field list
const LUA_FIELD = `
local function field(t, name)
  for i = 1, #t, 2 do if t[i] == name then return t[i + 1] end end
  return nil
end
local function groupLast(stream, group)
  if redis.call('EXISTS', stream) == 0 then return nil end
  for _, g in ipairs(redis.call('XINFO', 'GROUPS', stream)) do
    if field(g, 'name') == group then return field(g, 'last-delivered-id') end
  end
  return nil
end`;

// KEYS: stream; ARGV: group. Returns {committed, entries-added, length, pending ids}, all read at once.
const POSITION = `${LUA_FIELD}
local last = groupLast(KEYS[1], ARGV[1])
if not last then
  redis.call('XGROUP', 'CREATE', KEYS[1], ARGV[1], '0', 'MKSTREAM')
  last = '0-0'
end
local info = redis.call('XINFO', 'STREAM', KEYS[1])
local pending = {}
if last ~= '0-0' then
  for _, p in ipairs(redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1000000)) do
    pending[#pending + 1] = p[1]
  end
end
return {last, field(info, 'entries-added'), field(info, 'length'), pending}`;

// deletes the group's consumers that have nothing pending (evaluators of earlier versions read through the
// group, each process under its own consumer name)
const LUA_PRUNE = `
local function prune(stream, group)
  local n = 0
  for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', stream, group)) do
    if field(c, 'pending') == 0 then
      redis.call('XGROUP', 'DELCONSUMER', stream, group, field(c, 'name'))
      n = n + 1
    end
  end
  return n
end`;

// KEYS: stream; ARGV: group. Returns the consumers deleted.
const PRUNE = `${LUA_FIELD}${LUA_PRUNE}
if not groupLast(KEYS[1], ARGV[1]) then return 0 end
return prune(KEYS[1], ARGV[1])`;

// KEYS: stream; ARGV: group, id, entries read up to it. Moves the group's position forward only, and
// deletes consumers with nothing pending.
const COMMIT = `${LUA_FIELD}${LUA_PRUNE}
local function after(a, b)
  local ams, aseq = string.match(a, '^(%d+)-(%d+)$')
  local bms, bseq = string.match(b, '^(%d+)-(%d+)$')
  ams, aseq, bms, bseq = tonumber(ams), tonumber(aseq), tonumber(bms), tonumber(bseq)
  return ams > bms or (ams == bms and aseq > bseq)
end
local last = groupLast(KEYS[1], ARGV[1])
if not last then
  redis.call('XGROUP', 'CREATE', KEYS[1], ARGV[1], ARGV[2], 'MKSTREAM', 'ENTRIESREAD', ARGV[3])
  return 1
end
local moved = 0
if after(ARGV[2], last) then
  redis.call('XGROUP', 'SETID', KEYS[1], ARGV[1], ARGV[2], 'ENTRIESREAD', ARGV[3])
  moved = 1
end
prune(KEYS[1], ARGV[1])
return moved`;

export interface ShardPosition {
  /**
   * every entry up to this one has been applied and its results written (the shard's consumer group's
   * last-delivered id; '0-0' = nothing yet)
   */
  committed: string;
  /**
   * entries up to `committed` an evaluator of an earlier version read through the group and never
   * acknowledged: their results may be missing
   */
  pending: Set<string>;
  /** entries the log had before its first present one (trimmed or deleted): where counting starts */
  entriesBefore: number;
}

/**
 * Where a shard stands on the log (its consumer group created at the log's start if new), read in one
 * atomic step. The evaluator reads the log by entry id and records its progress here (`commitPosition`);
 * the group is never read through, so it only keeps that position and reports the lag.
 */
export async function shardPosition(redis: Redis, keys: Keyspace, group: string): Promise<ShardPosition> {
  const [committed, added, length, pending] = (await redis.eval(POSITION, 1, keys.stream, group)) as [
    string,
    number,
    number,
    string[],
  ];
  return {
    committed: String(committed),
    pending: new Set(pending),
    entriesBefore: Math.max(0, Number(added) - Number(length)),
  };
}

/**
 * Record that every entry up to `id` was applied and its results written; `entriesRead` counts the log's
 * entries up to it (so the group's lag is the backlog). The position only moves forward: a slower
 * evaluator of the same shard (a previous owner finishing its step) never takes it back. Consumers with
 * nothing pending are deleted on the way (see `pruneConsumers`). True if moved.
 */
export async function commitPosition(
  redis: Redis,
  keys: Keyspace,
  group: string,
  id: string,
  entriesRead: number,
): Promise<boolean> {
  return Number(await redis.eval(COMMIT, 1, keys.stream, group, id, entriesRead)) === 1;
}

/**
 * Delete the group's consumers with nothing pending: evaluators of earlier versions read through the group,
 * each process start adding a consumer that nothing deleted. One with entries pending is kept until they
 * are acknowledged. Returns how many were deleted.
 */
export async function pruneConsumers(redis: Redis, keys: Keyspace, group: string): Promise<number> {
  return Number(await redis.eval(PRUNE, 1, keys.stream, group));
}

/** Up to `count` entries of the log after `after`, waiting up to `blockMs` for one. */
export async function readAfter(
  reader: Redis,
  keys: Keyspace,
  after: string,
  count: number,
  blockMs: number,
): Promise<[string, string[]][]> {
  const res = (await reader.xread('COUNT', count, 'BLOCK', blockMs, 'STREAMS', keys.stream, after)) as
    | [string, [string, string[]][]][]
    | null;
  return res?.[0]?.[1] ?? [];
}

/** The log after `after` (default: from its start) up to `end` (inclusive), in pages of `[id, fields]`. */
export async function* pagesUpTo(
  redis: Redis,
  keys: Keyspace,
  end: string,
  pageSize = 2000,
  after?: string,
): AsyncGenerator<[string, string[]][]> {
  let start = after === undefined ? '-' : `(${after}`;
  for (;;) {
    const page = (await redis.xrange(keys.stream, start, end, 'COUNT', pageSize)) as [string, string[]][];
    if (page.length > 0) yield page;
    const last = page[page.length - 1];
    if (page.length < pageSize || !last) return;
    start = `(${last[0]}`;
  }
}
