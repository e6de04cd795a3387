/**
 * A supervisor that loses one shard's lease stops that shard's runner in the background: a runner slow to
 * stop (in a long step, e.g. a restore) does not hold up the renewal of the other shards' leases in the
 * same tick. `close` still waits for it.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ShardRunner } from '../../src/service/evaluator/runner.js';
import { type Kit, runnerKit } from './runner-kit.js';
import { eventually } from './wait.js';

let kit: Kit | undefined;
/** lets a held stop finish, so that a failed assertion does not leave the kit's close waiting on it */
let releaseHeld: (() => void) | undefined;
afterEach(async () => {
  releaseHeld?.();
  releaseHeld = undefined;
  vi.restoreAllMocks();
  await kit?.close();
  kit = undefined;
});

describe('a lost shard', () => {
  it('is stopped in the background: the shards after it keep their leases', async () => {
    const k = await runnerKit('sup-stop');
    kit = k;
    // shard 0's runner takes its time to stop, until released
    let release!: () => void;
    const released = new Promise<void>((r) => {
      release = r;
    });
    releaseHeld = release;
    let slowStops = 0;
    const stop = ShardRunner.prototype.stop;
    vi.spyOn(ShardRunner.prototype, 'stop').mockImplementation(async function (this: ShardRunner) {
      if (this.status().shard === 0) {
        slowStops++;
        await released;
      }
      return stop.call(this);
    });
    const leaseMs = 1500;
    const sup = await k.supervisor(leaseMs, { shards: 2 });
    expect(sup.shards()).toEqual([0, 1]);
    const lease1 = k.keys.shardLease(1);
    const owner1 = await k.admin.get(lease1);
    // another process takes shard 0
    await k.admin.set(k.keys.shardLease(0), 'thief', 'PX', 60_000);
    await eventually(
      () => sup.shards(),
      (s) => !s.includes(0),
      'the supervisor to see shard 0 lost',
    );
    expect(slowStops).toBe(1);
    // shard 1's lease is renewed while shard 0's runner is still stopping: a renewal resets its ttl, so a
    // sample above the one before it (polled every 25 ms; untouched, the ttl only falls) is a renewal. Comparing
    // with the first sample only would miss renewals when that sample was taken just after one.
    let previous = await k.admin.pttl(lease1);
    await eventually(
      async () => {
        const ttl = await k.admin.pttl(lease1);
        const renewed = ttl > previous;
        previous = ttl;
        return { ttl, renewed };
      },
      (s) => s.renewed,
      "shard 1's lease to be renewed",
      3 * leaseMs,
    );
    expect(await k.admin.get(lease1)).toBe(owner1);
    expect(sup.shards()).toEqual([1]);
    // close waits for the slow stop
    let closed = false;
    const closing = sup.close().then(() => {
      closed = true;
    });
    await new Promise((r) => setImmediate(r));
    expect(closed).toBe(false);
    release();
    await closing;
    expect(closed).toBe(true);
  }, 30_000);
});
