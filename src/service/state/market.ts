/**
 * The latest market inputs per symbol (mark, top of book, contract parameters), written by the
 * evaluators and read by workers so that a job executes against the market at execution time.
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
  const flat: string[] = [];
  for (const [symbol, r] of records) flat.push(symbol, JSON.stringify(r));
  await redis.hset(keys.market, ...flat);
}

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
