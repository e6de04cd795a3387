/**
 * What two owners of one shard write while they overlap (the previous owner has not noticed yet that its
 * lease was taken): the settlement of each fill is audited once.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { CanonicalEventInput } from '../../src/events/schema.js';
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
});
