/**
 * Reduce-only at execution: every job decided at one epoch saw the same position (the epoch is the
 * position's version), so together they may close at most that position. Each job reserves its share
 * atomically before executing (a retry gets its first grant back); a job that finally fails gives its
 * share back. This keeps a REDUCE and a LIQUIDATE of one epoch, racing in two workers, from flipping a
 * position.
 */
import type { Redis } from 'ioredis';
import type { Keyspace } from './keys.js';

const RESERVE = `
local out = {}
local jobId = ARGV[1]
for i = 3, #ARGV, 3 do
  local sym = ARGV[i]
  local want = tonumber(ARGV[i + 1])
  local cap = tonumber(ARGV[i + 2])
  local jf = 'job:' .. jobId .. ':' .. sym
  local have = redis.call('HGET', KEYS[1], jf)
  if have then
    out[#out + 1] = have
  else
    local used = tonumber(redis.call('HGET', KEYS[1], 'used:' .. sym) or '0')
    local grant = math.min(want, cap - used)
    if grant < 0 then grant = 0 end
    local g = string.format('%.17g', grant)
    redis.call('HINCRBYFLOAT', KEYS[1], 'used:' .. sym, g)
    redis.call('HSET', KEYS[1], jf, g)
    out[#out + 1] = g
  end
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return out`;

const RELEASE = `
for i = 2, #ARGV do
  local sym = ARGV[i]
  local jf = 'job:' .. ARGV[1] .. ':' .. sym
  local have = redis.call('HGET', KEYS[1], jf)
  if have then
    redis.call('HINCRBYFLOAT', KEYS[1], 'used:' .. sym, '-' .. have)
    redis.call('HDEL', KEYS[1], jf)
  end
end
return 1`;

/** ms a reservation is kept (as long as completed job ids) */
const KEEP_MS = 7 * 86_400_000;

export interface ReservationRequest {
  symbol: string;
  qty: number; // contracts wanted
  /** contracts: |position| at the epoch */
  cap: number;
}

export class Reservations {
  constructor(
    private readonly redis: Redis,
    private readonly keys: Keyspace,
  ) {}

  private key(account: string, epoch: number): string {
    return `${this.keys.prefix}:resv:${encodeURIComponent(account)}:${epoch}`;
  }

  /** contracts granted per request, in order (0 = that position is already fully closed by others) */
  async reserve(
    account: string,
    epoch: number,
    jobId: string,
    reqs: readonly ReservationRequest[],
  ): Promise<number[]> {
    const argv = [jobId, KEEP_MS, ...reqs.flatMap((r) => [r.symbol, r.qty, r.cap])];
    const out = (await this.redis.eval(RESERVE, 1, this.key(account, epoch), ...argv)) as string[];
    return out.map(Number);
  }

  async release(account: string, epoch: number, jobId: string, symbols: readonly string[]): Promise<void> {
    await this.redis.eval(RELEASE, 1, this.key(account, epoch), jobId, ...symbols);
  }
}
