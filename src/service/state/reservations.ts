/**
 * Reduce-only at execution: every job decided at one epoch saw the same position (the epoch is the
 * position's version), so together they may close at most that position. Each job reserves its share
 * atomically before executing (a retry gets its first grant back); a job that finally fails gives its
 * share back. This keeps a REDUCE and a LIQUIDATE of one epoch, racing in two workers, from flipping a
 * position.
 *
 * A share is held under the idempotency key the job sends under (field `job:<key>:<symbol>`): the job id,
 * or `<jobId>#g<n>` once earlier generations of its request were retired (see ExecutionRecords). A
 * reservation under a generation's key first drops the shares of the keys it supersedes (the job's earlier,
 * retired generations: nothing sent under them executed), so a run of a new generation takes over what the
 * job held, and the release of a retired generation's share, coming before or after it, never touches the
 * share the new generation sends under.
 */
import type { Redis } from 'ioredis';
import type { Keyspace } from './keys.js';

// gives back the share held under field jf of the reservation hash (KEYS[1]), if any
const LUA_GIVE_BACK = `
local function giveBack(jf, sym)
  local had = redis.call('HGET', KEYS[1], jf)
  if had then
    redis.call('HINCRBYFLOAT', KEYS[1], 'used:' .. sym, '-' .. had)
    redis.call('HDEL', KEYS[1], jf)
  end
end`;

// KEYS: reservation hash. ARGV: key, keep ms, n superseded keys, those keys, then symbol, want, cap triples
const RESERVE = `${LUA_GIVE_BACK}
local out = {}
local key = ARGV[1]
local nOld = tonumber(ARGV[3])
local first = 4 + nOld
for i = first, #ARGV, 3 do
  local sym = ARGV[i]
  for k = 4, 3 + nOld do giveBack('job:' .. ARGV[k] .. ':' .. sym, sym) end
end
for i = first, #ARGV, 3 do
  local sym = ARGV[i]
  local want = tonumber(ARGV[i + 1])
  local cap = tonumber(ARGV[i + 2])
  local jf = 'job:' .. key .. ':' .. sym
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

const RELEASE = `${LUA_GIVE_BACK}
for i = 2, #ARGV do giveBack('job:' .. ARGV[1] .. ':' .. ARGV[i], ARGV[i]) end
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

  /**
   * Contracts granted per request, in order (0 = that position is already fully closed by others), held
   * under `key` (a job's idempotency key). The shares held under `supersedes` (the same job's retired
   * generations) for these symbols are given back first, in the same step.
   */
  async reserve(
    account: string,
    epoch: number,
    key: string,
    reqs: readonly ReservationRequest[],
    supersedes: readonly string[] = [],
  ): Promise<number[]> {
    const argv = [
      key,
      KEEP_MS,
      supersedes.length,
      ...supersedes,
      ...reqs.flatMap((r) => [r.symbol, r.qty, r.cap]),
    ];
    const out = (await this.redis.eval(RESERVE, 1, this.key(account, epoch), ...argv)) as string[];
    return out.map(Number);
  }

  /** Give back the shares held under `key` for `symbols` (none held: nothing changes). */
  async release(account: string, epoch: number, key: string, symbols: readonly string[]): Promise<void> {
    await this.redis.eval(RELEASE, 1, this.key(account, epoch), key, ...symbols);
  }
}
