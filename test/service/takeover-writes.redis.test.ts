/**
 * What two owners of one shard write while they overlap (the previous owner has not noticed yet that its
 * lease was taken): the settlement of each fill is audited once, and a view or a shard status written under
 * a lost lease never replaces the new owner's.
 */
import type { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import type { CanonicalEventInput } from '../../src/events/schema.js';
import type { RiskView } from '../../src/service/api/schemas.js';
import { LeaseLostError, Outbox, type OutboxDeps } from '../../src/service/evaluator/outbox.js';
import { AuditLog } from '../../src/service/state/audit.js';
import { compareIds } from '../../src/service/state/event-log.js';
import { connectRedis } from '../../src/service/state/redis.js';
import { RestrictionStore } from '../../src/service/state/restrictions.js';
import { VIEWS_PER_WRITE } from '../../src/service/state/risk-store.js';
import { lossyRedisProxy } from '../helpers/lossy-redis-proxy.js';
import { redisUrl } from '../helpers/redis.js';
import { deposit, fill, instrument, mark, T0 } from './events-fixtures.js';
import { type Kit, runnerKit } from './runner-kit.js';
import { allAudit, evaluatedToTail } from './settle.js';
import { eventually } from './wait.js';

const MIN = 60_000; // ms

let kit: Kit | undefined;
afterEach(async () => {
  await kit?.close();
  kit = undefined;
});

/** a fill recorded back from a job, as the workers record it (`exec-<jobId>-<i>`) */
const execFill = (id: string, account: string, qty: number, ts: number): CanonicalEventInput => ({
  ...fill(account, 'buy', qty, 100, ts),
  id,
});

describe('two owners of one shard', () => {
  it('audit each settlement once, however many owners apply its fill', async () => {
    kit = await runnerKit('svc-settled-once');
    const k = kit;
    await k.append([
      instrument(),
      mark(100, T0 + 1),
      deposit('a', 10_000, T0 + 2),
      deposit('b', 10_000, T0 + 3),
    ]);
    // the previous owner has not noticed (yet) that its lease is gone: both apply and write every entry
    const previous = k.runner('previous');
    await previous.start();
    await evaluatedToTail(k.admin, k.prefix, 1);
    const next = k.runner('next');
    await next.start();
    await k.append([
      // one job settling in two fills, and fills of two other jobs
      execFill('exec-deleverage-a-1-0', 'a', 1, T0 + MIN),
      execFill('exec-deleverage-a-1-1', 'a', 2, T0 + MIN + 1),
      execFill('exec-deleverage-b-1-0', 'b', 1, T0 + MIN + 2),
      execFill('exec-deleverage-b-2-0', 'b', 1, T0 + MIN + 3),
    ]);
    const tail = await k.tail();
    for (const r of [previous, next])
      await eventually(
        () => r.status().committedEntryId,
        (id) => id === tail,
        'both owners to write the results of the whole log',
      );
    const settled = (await allAudit(k.admin, k.prefix)).filter((e) => e.kind === 'settled');
    expect(settled.map((e) => `${e.jobId}|${e.data.eventId}`).sort()).toEqual([
      'deleverage-a-1|exec-deleverage-a-1-0',
      'deleverage-a-1|exec-deleverage-a-1-1',
      'deleverage-b-1|exec-deleverage-b-1-0',
      'deleverage-b-2|exec-deleverage-b-2-0',
    ]);
  });

  it("a view written under a lost lease does not replace the new owner's", async () => {
    kit = await runnerKit('svc-view-fence');
    const k = kit;
    const lease = k.keys.shardLease(0);
    await k.admin.set(lease, 'previous#1');
    // the previous owner checks its lease before each read and each write of results. Once `stallAfter` is
    // set, its check before writing the results of a later entry waits for `resume` and then passes (a
    // process paused between its check and its write, past its lease); its checks after that see the lease
    let stallAfter: string | undefined;
    let stalled = false;
    let resume: () => void = () => {};
    const resumed = new Promise<void>((r) => {
      resume = r;
    });
    const previous = k.runner('previous', {
      leaseValue: 'previous#1',
      fence: async () => {
        if (
          !stalled &&
          stallAfter !== undefined &&
          compareIds(previous.status().lastEntryId, stallAfter) > 0
        ) {
          stalled = true;
          await resumed;
          return true;
        }
        return (await k.admin.get(lease)) === 'previous#1';
      },
    });
    await previous.start();
    await k.append([instrument(), mark(100, T0 + 1), deposit('a', 1000, T0 + 2)]);
    await evaluatedToTail(k.admin, k.prefix, 1);
    stallAfter = await k.tail();
    const [stale] = await k.append([deposit('a', 500, T0 + 3)]);
    await eventually(
      () => stalled,
      (s) => s,
      'the previous owner to apply the deposit and stop before writing',
    );
    expect(previous.status().lastEntryId).toBe(stale);

    // the lease expired and the next owner took it: it applies the same deposit and a later one
    await k.admin.set(lease, 'next#1');
    const next = k.runner('next', {
      leaseValue: 'next#1',
      fence: async () => (await k.admin.get(lease)) === 'next#1',
    });
    await next.start();
    await k.append([deposit('a', 250, T0 + 4)]);
    await eventually(
      async () => (await k.store.get('a'))?.equity,
      (e) => e === 1750,
      "the next owner's view",
    );

    // the previous owner resumes and writes the results of its step (the 1500 view)
    resume();
    await eventually(
      () => previous.status().leaseLost,
      (lost) => lost,
      'the previous owner to finish its step and notice the lost lease',
    );
    expect(await k.store.get('a')).toMatchObject({ equity: 1750 });
    // the next owner goes on writing
    await k.append([deposit('a', 50, T0 + 5)]);
    await eventually(
      async () => (await k.store.get('a'))?.equity,
      (e) => e === 1800,
      "the next owner's later view",
    );
  });
});

/** a stored risk view of `account` with probability of default `pd` */
function viewOf(account: string, pd: number | null, equity: number): RiskView {
  return {
    account,
    pd,
    marginRatio: 2,
    equity,
    mm: 1,
    im: 1,
    freeCollateral: 0,
    decision: 'WATCH',
    reasons: [],
    reductions: [],
    positions: [],
    topFeatures: [],
    modelVersion: null,
    epoch: 1,
    reduceOnly: false,
    reduceOnlyUntil: null,
    asOf: 1,
    evaluatedAt: 1,
  };
}

describe('a view write fenced by the lease', () => {
  it('writes and lists as an unfenced write while the lease holds its value, and nothing after', async () => {
    kit = await runnerKit('svc-fenced-write');
    const k = kit;
    const fence = { key: k.keys.shardLease(0), value: 'owner#1' };
    const listed = () => k.store.atRisk(0, 10);
    // no lease at all (expired): refused
    expect(await k.store.write(0, [viewOf('a', 0.5, 1)], fence)).toBe(false);
    expect(await k.store.get('a')).toBeUndefined();

    await k.admin.set(fence.key, 'owner#1');
    // (the kit's store lists pd >= 0.01)
    expect(
      await k.store.write(0, [viewOf('a', 0.5, 1), viewOf('b', 0.2, 2), viewOf('c', null, 3)], fence),
    ).toBe(true);
    expect((await k.store.getMany(['a', 'b', 'c'])).results.map((v) => v.equity)).toEqual([1, 2, 3]);
    expect(await listed()).toEqual([
      { account: 'a', pd: 0.5 },
      { account: 'b', pd: 0.2 },
    ]);
    // a lower pd unlists; a null pd unlists
    expect(await k.store.write(0, [viewOf('a', 0.001, 4), viewOf('b', null, 5)], fence)).toBe(true);
    expect(await listed()).toEqual([]);
    expect(await k.store.write(0, [viewOf('a', 0.3, 6)], fence)).toBe(true);

    await k.admin.set(fence.key, 'owner#2'); // taken over
    expect(await k.store.write(0, [viewOf('a', 0.9, 7), viewOf('d', 0.9, 8)], fence)).toBe(false);
    expect(await k.store.get('a')).toMatchObject({ equity: 6, pd: 0.3 });
    expect(await k.store.get('d')).toBeUndefined();
    expect(await listed()).toEqual([{ account: 'a', pd: 0.3 }]);
  });

  it('writes more views than one round trip holds, in several, fenced and not', async () => {
    kit = await runnerKit('svc-view-chunks');
    const k = kit;
    const fence = { key: k.keys.shardLease(0), value: 'owner#1' };
    await k.admin.set(fence.key, 'owner#1');
    const n = 2 * VIEWS_PER_WRITE + 7;
    const views = Array.from({ length: n }, (_, i) => viewOf(`v${i}`, i % 2 === 0 ? 0.5 : null, i));
    expect(await k.store.write(0, views, fence)).toBe(true);
    expect(await k.admin.hlen(k.keys.risk(0))).toBe(n);
    expect(await k.admin.zcard(k.keys.atRisk(0))).toBe(VIEWS_PER_WRITE + 4);
    expect((await k.store.get(`v${n - 1}`))?.equity).toBe(n - 1);
    // unfenced: the same, over the first
    expect(
      await k.store.write(
        0,
        views.map((v) => ({ ...v, equity: v.equity + 1 })),
      ),
    ).toBe(true);
    expect((await k.store.get(`v${n - 1}`))?.equity).toBe(n);
  });
});

/** What an outbox of the kit's shard 0 writes with, its own writes (views, status) through `redis`. */
function kitOutboxDeps(k: Kit, redis: Redis): OutboxDeps {
  return {
    redis,
    keys: k.keys,
    store: k.store,
    restrictions: new RestrictionStore(k.redis, k.keys, 1),
    producer: k.producer,
    audit: new AuditLog(k.redis, k.keys),
    metrics: k.metrics,
  };
}

describe("the shard's status, written by a flush fenced by the lease", () => {
  it('is written while the lease holds the writer value, and left as it is under a lost or expired lease', async () => {
    kit = await runnerKit('svc-status-fence');
    const k = kit;
    const deps = kitOutboxDeps(k, k.redis);
    const lease = k.keys.shardLease(0);
    const status = k.keys.shardStatus(0);
    /** a flush of one acknowledgement (it writes the status) by the runner holding the lease as `value` */
    const flush = (value: string, lastEntryId: string, clock: number): Promise<void> => {
      const o = new Outbox();
      o.acks.push(lastEntryId);
      return o.flush(deps, {
        shard: 0,
        group: k.keys.shardGroup(0),
        consumer: value,
        lastEntryId,
        clock,
        fence: { key: lease, value },
      });
    };
    await k.admin.set(lease, 'next#1');
    await flush('next#1', '20-0', 2000);
    const written = await k.admin.hgetall(status);
    expect(written).toMatchObject({ lastEntryId: '20-0', clock: '2000', consumer: 'next#1' });
    // the previous owner (paused past its lease, now back) flushes an older entry: refused, nothing written
    await expect(flush('previous#1', '10-0', 1000)).rejects.toThrow(LeaseLostError);
    expect(await k.admin.hgetall(status)).toEqual(written);
    // no lease at all (expired): refused too
    await k.admin.del(lease);
    await expect(flush('next#1', '30-0', 3000)).rejects.toThrow(LeaseLostError);
    expect(await k.admin.hgetall(status)).toEqual(written);
    // the holder writes on
    await k.admin.set(lease, 'next#1');
    await flush('next#1', '30-0', 3000);
    expect(await k.admin.hgetall(status)).toMatchObject({
      lastEntryId: '30-0',
      clock: '3000',
      consumer: 'next#1',
    });
  });

  it('is written by the retried flush when its write was lost on the network, the entries acknowledged again', async () => {
    kit = await runnerKit('svc-status-retry');
    const k = kit;
    // the runner's connection (fail-fast) through a proxy that loses the status write before Redis gets it
    const proxy = await lossyRedisProxy(redisUrl());
    const redis = await connectRedis(proxy.url, 'fail-fast', 'status-retry');
    try {
      const deps = kitOutboxDeps(k, redis);
      const group = k.keys.shardGroup(0);
      const lease = k.keys.shardLease(0);
      const status = k.keys.shardStatus(0);
      // three entries read by the shard's group, pending until acknowledged
      const ids = await k.append([instrument(), mark(100, T0 + 1), deposit('a', 10_000, T0 + 2)]);
      await k.admin.xgroup('CREATE', k.keys.stream, group, '0');
      await k.admin.xreadgroup('GROUP', group, 'owner#1', 'STREAMS', k.keys.stream, '>');
      /** entries of the group read and not acknowledged */
      const pending = async () => ((await k.admin.xpending(k.keys.stream, group)) as [number])[0];
      expect(await pending()).toBe(3);
      await k.admin.set(lease, 'owner#1');
      const o = new Outbox();
      o.acks.push(...ids);
      const progress = {
        shard: 0,
        group,
        consumer: 'owner#1',
        lastEntryId: ids[2]!,
        clock: T0 + 2,
        fence: { key: lease, value: 'owner#1' },
      };

      // the acknowledgement goes through; the status write is lost before Redis runs it
      proxy.arm(status, 'request');
      await expect(o.flush(deps, progress)).rejects.toThrow();
      expect(proxy.lost).toBe(1);
      expect(await pending()).toBe(0);
      expect(await k.admin.exists(status)).toBe(0);
      // still pending in the outbox: the runner's loop flushes again
      expect(o.pending()).toBe(true);

      await eventually(
        () => redis.status,
        (st) => st === 'ready',
        'the client to reconnect',
      );
      // the retried flush acknowledges again (a no-op) and writes the status
      await o.flush(deps, progress);
      expect(await k.admin.hgetall(status)).toMatchObject({
        lastEntryId: ids[2],
        clock: String(T0 + 2),
        consumer: 'owner#1',
      });
      expect(o.pending()).toBe(false);
      expect(o.acks).toEqual([]);
    } finally {
      redis.disconnect();
      await proxy.close();
    }
  });
});
