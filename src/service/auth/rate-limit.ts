/**
 * Per-key request limits shared by every API process: a fixed-window counter in Redis (one atomic
 * INCR + PEXPIRE script per request), so N API processes together still allow `limit` per window.
 */
import type { Redis } from 'ioredis';
import type { Keyspace } from '../state/keys.js';

const SCRIPT = `
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n`;

export interface RateDecision {
  allowed: boolean;
  limit: number;
  remaining: number;
  /** ms until the window resets */
  resetMs: number;
}

export class RateLimiter {
  constructor(
    private readonly redis: Redis,
    private readonly keys: Keyspace,
    /** requests per window; 0 = unlimited */
    readonly limit: number,
    /** ms */
    readonly windowMs: number,
  ) {}

  async hit(keyId: string, now = Date.now()): Promise<RateDecision> {
    if (this.limit <= 0) return { allowed: true, limit: 0, remaining: Number.POSITIVE_INFINITY, resetMs: 0 };
    const window = Math.floor(now / this.windowMs);
    const count = Number(await this.redis.eval(SCRIPT, 1, this.keys.rateLimit(keyId, window), this.windowMs));
    const resetMs = (window + 1) * this.windowMs - now;
    return {
      allowed: count <= this.limit,
      limit: this.limit,
      remaining: Math.max(0, this.limit - count),
      resetMs,
    };
  }
}
