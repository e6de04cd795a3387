/**
 * Which process evaluates a shard: a Redis lease (SET NX PX, renewed by its holder, released on
 * shutdown), whose value is unique to one acquisition. A runner that loses its lease stops evaluating
 * that shard at its next check; another takes it over after at most one lease period and rebuilds the
 * state from the event log.
 */
import type { Redis } from 'ioredis';

const RENEW = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`;
const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

export class ShardLease {
  constructor(
    private readonly redis: Redis,
    private readonly key: string,
    readonly owner: string,
    /** ms */
    readonly ttlMs: number,
  ) {}

  async acquire(): Promise<boolean> {
    return (await this.redis.set(this.key, this.owner, 'PX', this.ttlMs, 'NX')) === 'OK';
  }

  /** whether this acquisition still holds the lease (a read, not a renewal) */
  async holds(): Promise<boolean> {
    return (await this.redis.get(this.key)) === this.owner;
  }

  /** false when the lease was lost (expired and taken, or deleted) */
  async renew(): Promise<boolean> {
    return Number(await this.redis.eval(RENEW, 1, this.key, this.owner, this.ttlMs)) === 1;
  }

  async release(): Promise<void> {
    await this.redis.eval(RELEASE, 1, this.key, this.owner);
  }
}
