/**
 * Shard ownership against a real Redis: an evaluator reads the log by entry id after the last entry it
 * applied, so a new owner's state holds every entry whatever a previous owner still reads; a runner that
 * lost its lease stops before reading or writing more; a restart runs effects only for the entries after
 * the committed one; the consumers evaluators of earlier versions left in the group are deleted.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { deposit, fill, instrument, mark, T0 } from './events-fixtures.js';
import { type Kit, runnerKit } from './runner-kit.js';
import { evaluatedToTail } from './settle.js';
import { eventually } from './wait.js';

const MIN = 60_000; // ms
const accounts = Array.from({ length: 30 }, (_, i) => `f${i}`);

let kit: Kit | undefined;
afterEach(async () => {
  await kit?.close();
  kit = undefined;
});

/** the group's committed entry, entries read and lag */
async function group(k: Kit): Promise<{ committed: string; entriesRead: unknown; lag: unknown }> {
  const groups = (await k.admin.xinfo('GROUPS', k.keys.stream)) as unknown[][];
  for (const g of groups) {
    const f = new Map<string, unknown>();
    for (let i = 0; i + 1 < g.length; i += 2) f.set(String(g[i]), g[i + 1]);
    if (f.get('name') === k.keys.shardGroup(0))
      return {
        committed: String(f.get('last-delivered-id')),
        entriesRead: f.get('entries-read'),
        lag: f.get('lag'),
      };
  }
  throw new Error('no group');
}

describe('two evaluators of one shard', () => {
  it('the new owner applies every entry once, whatever the previous owner still reads', async () => {
    kit = await runnerKit('svc-takeover');
    const k = kit;
    await k.append([
      instrument(),
      mark(100, T0 + 1),
      ...accounts.map((a, i) => deposit(a, 1000, T0 + 2 + i)),
    ]);
    // the previous owner: it has not noticed (yet) that its lease is gone, and goes on reading
    const previous = k.runner('previous');
    await previous.start();
    await evaluatedToTail(k.admin, k.prefix, 1);
    const next = k.runner('next');
    await next.start();
    let ts = T0 + MIN;
    for (const a of accounts) await k.append([fill(a, 'buy', 1, 100, ts++)]);
    const tail = await k.tail();
    await eventually(
      () => next.status().lastEntryId,
      (id) => id === tail,
      'the new owner to apply the whole log',
    );
    // the previous owner goes on reading too (it still holds no fence here): wait for it before comparing
    await eventually(
      () => previous.status().lastEntryId,
      (id) => id === tail,
      'the previous owner to read to the end as well',
    );
    const qty = (r: typeof next) =>
      accounts.map((a) => r.state.pipeline.book.snapshot(a)?.positions[0]?.qty ?? 0);
    expect(qty(next)).toEqual(accounts.map(() => 1));
    expect(qty(previous)).toEqual(accounts.map(() => 1));
    // both commit; the position only moves forward, and the lag is the backlog
    await eventually(
      () => group(k),
      (g) => g.committed === tail,
      'the whole log committed',
    );
    expect(await group(k)).toEqual({
      committed: tail,
      entriesRead: await k.admin.xlen(k.keys.stream),
      lag: 0,
    });
  });

  it('a runner that lost its lease stops before reading or committing more', async () => {
    kit = await runnerKit('svc-fence');
    const k = kit;
    const lease = k.keys.shardLease(0);
    await k.admin.set(lease, 'first#1');
    const first = k.runner('first', { fence: async () => (await k.admin.get(lease)) === 'first#1' });
    await first.start();
    await k.append([instrument(), mark(100, T0 + 1), deposit('a', 1000, T0 + 2)]);
    await evaluatedToTail(k.admin, k.prefix, 1);
    const committed = (await group(k)).committed;
    expect(committed).toBe(await k.tail());

    await k.admin.set(lease, 'second#1'); // the lease expired and another process took it
    await k.append([deposit('b', 1000, T0 + 3)]);
    await eventually(
      () => first.status().leaseLost,
      (lost) => lost,
      'the runner to notice the lost lease',
    );
    expect(first.status().committedEntryId).toBe(committed);
    expect((await group(k)).committed).toBe(committed);
    expect(await k.store.get('b')).toBeUndefined();
  });
});

describe('a restart', () => {
  it('replays the committed entries without effects and runs them for the entries after', async () => {
    kit = await runnerKit('svc-committed');
    const k = kit;
    const first = k.runner('first');
    await first.start();
    const [, , , , markId] = await k.append([
      instrument(),
      mark(100, T0 + 1),
      deposit('doomed', 150, T0 + 2),
      fill('doomed', 'buy', 20, 100, T0 + 3),
      mark(90, T0 + MIN), // doomed below MM: LIQUIDATE
    ]);
    await evaluatedToTail(k.admin, k.prefix, 1);
    expect(await k.jobIds('liquidate')).toEqual(['liquidate-doomed-1']);
    await first.stop();
    // the job is gone (so a re-enqueue would show); one entry arrives while no evaluator runs
    await k.producer.queues.liquidate.obliterate({ force: true });
    await k.append([deposit('other', 100, T0 + MIN + 1)]);

    const second = k.runner('second');
    await second.start();
    await evaluatedToTail(k.admin, k.prefix, 1);
    expect(await k.store.get('other')).toMatchObject({ equity: 100 });
    expect(await k.jobIds('liquidate')).toEqual([]);
    await second.stop();

    // as if an evaluator had died after the 90 mark's results were written, before it committed
    const before = (await k.admin.xrange(k.keys.stream, '-', `(${markId}`)).at(-1)?.[0] as string;
    await k.admin.xgroup('SETID', k.keys.stream, k.keys.shardGroup(0), before);
    const third = k.runner('third');
    await third.start();
    await eventually(
      () => k.jobIds('liquidate'),
      (ids) => ids.length === 1,
      'the decision to be made again',
    );
    expect(await k.jobIds('liquidate')).toEqual(['liquidate-doomed-1']);
  });
});

describe('consumers of earlier versions', () => {
  it('are deleted once nothing is pending for them; the evaluator adds none', async () => {
    kit = await runnerKit('svc-consumers');
    const k = kit;
    const g = k.keys.shardGroup(0);
    await k.append([instrument(), mark(100, T0 + 1), deposit('a', 1000, T0 + 2)]);
    // two earlier evaluator processes: one acknowledged what it read, one died with an entry pending
    await k.admin.xgroup('CREATE', k.keys.stream, g, '0', 'MKSTREAM');
    const read = (consumer: string) =>
      k.admin.xreadgroup('GROUP', g, consumer, 'COUNT', 100, 'STREAMS', k.keys.stream, '>') as Promise<
        [string, [string, string[]][]][]
      >;
    const first = await read('old-1');
    await k.admin.xack(k.keys.stream, g, ...(first[0]?.[1] ?? []).map(([id]) => id));
    await k.append([deposit('b', 1000, T0 + 3)]);
    await read('old-2');
    const consumers = async () =>
      ((await k.admin.xinfo('CONSUMERS', k.keys.stream, g)) as unknown[][]).map((c) => c[1]);
    expect(await consumers()).toEqual(['old-1', 'old-2']);

    const runner = k.runner('new');
    await runner.start();
    // b's deposit was pending: applied with its effects, acknowledged, and its consumer deleted
    expect(await k.store.get('b')).toMatchObject({ equity: 1000 });
    expect(((await k.admin.xpending(k.keys.stream, g)) as [number])[0]).toBe(0);
    expect(await consumers()).toEqual([]);
    await k.append([deposit('c', 1000, T0 + 4)]);
    await evaluatedToTail(k.admin, k.prefix, 1);
    expect(await consumers()).toEqual([]);
  });
});
