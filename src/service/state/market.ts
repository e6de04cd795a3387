/**
 * The latest market inputs per symbol (mark, top of book, contract parameters), written by the
 * evaluators and read by workers so that a job executes against the market at execution time. Every shard
 * writes the symbols it sees, each at its own point in the log (one may lag another, or be a previous owner
 * finishing a step), so a record is replaced only by one at least as new in event time: the hash never goes
 * back to an older mark.
 */
import type { Redis } from 'ioredis';
import { type MarketInput, MarketInputSchema } from '../queue/job.js';
import type { Keyspace } from './keys.js';

export interface MarketRecord {
  input: MarketInput;
  /** ms, event time of the newest mark or book behind `input` */
  ts: number;
}

export async function writeMarket(
  redis: Redis,
  keys: Keyspace,
  records: ReadonlyMap<string, MarketRecord>,
): Promise<void> {
  if (records.size === 0) return;
  const argv: string[] = [];
  for (const [symbol, r] of records) argv.push(symbol, String(r.ts), JSON.stringify(r));
  await redis.call('EVAL', [WRITE_NEWER, 1, keys.market, ...argv]);
}

// KEYS: the market hash. ARGV: per symbol, its name, event time (ms) and record JSON. A symbol's record is
// written unless the stored one is newer in event time (an unreadable stored record is replaced).
const WRITE_NEWER = `
for i = 1, #ARGV, 3 do
  local cur = redis.call('HGET', KEYS[1], ARGV[i])
  local newer = true
  if cur then
    local ok, rec = pcall(cjson.decode, cur)
    if ok and type(rec) == 'table' and type(rec.ts) == 'number' and rec.ts > tonumber(ARGV[i + 1]) then
      newer = false
    end
  end
  if newer then redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 2]) end
end
return 1`;

export async function readMarket(
  redis: Redis,
  keys: Keyspace,
  symbols: readonly string[],
): Promise<Record<string, MarketRecord>> {
  if (symbols.length === 0) return {};
  const raw = await redis.hmget(keys.market, ...symbols);
  const out: Record<string, MarketRecord> = {};
  raw.forEach((v, i) => {
    const s = symbols[i];
    if (!v || s === undefined) return;
    const parsed = JSON.parse(v) as { input?: unknown; ts?: unknown };
    const input = MarketInputSchema.safeParse(parsed.input);
    if (input.success && typeof parsed.ts === 'number') out[s] = { input: input.data, ts: parsed.ts };
  });
  return out;
}
