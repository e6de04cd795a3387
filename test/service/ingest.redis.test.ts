/**
 * POST /v1/events against a real Redis: JSON arrays and NDJSON, whole-batch rejection with index and
 * field, partial mode, id de-duplication across requests, and the declared-instrument rule.
 */
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { decodeEntry } from '../../src/service/state/event-log.js';
import { keyspace } from '../../src/service/state/keys.js';
import { connect } from '../helpers/redis.js';
import { deposit, fill, instrument, mark, ndjson, T0 } from './events-fixtures.js';
import { type Harness, makeHarness } from './harness.js';

let h: Harness;
const redis = connect();
beforeEach(async () => {
  h = await makeHarness('svc-ingest');
});
afterEach(async () => {
  await h.close();
});
afterAll(() => redis.disconnect());

async function logged() {
  const rows = await redis.xrange(keyspace(h.prefix).stream, '-', '+');
  return rows.map(([, fields]) => decodeEntry(fields));
}

const post = (body: unknown, query = '') =>
  h.call('POST', `/v1/events${query}`, {
    key: h.keys['events:write'],
    ...(typeof body === 'string' ? { raw: body, contentType: 'application/x-ndjson' } : { body }),
  });

describe('POST /v1/events', () => {
  it('appends a JSON array in order, with defaults applied, before answering', async () => {
    const res = await post([instrument(), mark(100, T0 + 1), deposit('a', 1000, T0 + 2)]);
    expect(res.status).toBe(200);
    const body = (await res.json()) as { accepted: number; firstId: string; lastId: string };
    expect(body).toMatchObject({ accepted: 3, duplicates: 0, rejected: [] });
    const events = await logged();
    expect(events.map((e) => e?.type)).toEqual(['instrument', 'mark', 'deposit']);
    expect(events[0]).toMatchObject({ contractSize: 1, liquidationFeeRate: 0.005 });
    const ids = (await redis.xrange(keyspace(h.prefix).stream, '-', '+')).map(([id]) => id);
    expect([body.firstId, body.lastId]).toEqual([ids[0], ids[2]]);
  });

  it('accepts NDJSON', async () => {
    const res = await post(ndjson([instrument(), mark(100, T0 + 1)]));
    expect(await res.json()).toMatchObject({ accepted: 2 });
    expect((await logged()).length).toBe(2);
  });

  it('rejects a batch whole, naming the index and field of the first invalid event', async () => {
    const bad = { type: 'mark', ts: T0, symbol: 'BTC-PERP', price: -5 };
    const res = await post([instrument(), mark(100, T0 + 1), bad, { type: 'deposit', ts: 1 }]);
    expect(res.status).toBe(400);
    const body = (await res.json()) as Record<string, unknown>;
    expect(body).toMatchObject({ code: 'INVALID_EVENT', index: 2, field: 'price' });
    expect(String(body.message)).toContain('index 2');
    expect(await logged()).toEqual([]);
  });

  it('rejects an event naming an undeclared instrument (stateful rule, shared through Redis)', async () => {
    const res = await post([mark(100, T0, 'ETH-PERP')]);
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ index: 0, field: 'symbol' });
    // declared by an earlier request (possibly another API process): accepted
    await post([instrument('ETH-PERP')]);
    expect((await post([mark(100, T0 + 5, 'ETH-PERP')])).status).toBe(200);
    // declared earlier in the same batch: accepted
    expect((await post([instrument('SOL-PERP'), mark(5, T0 + 6, 'SOL-PERP')])).status).toBe(200);
    expect((await logged()).map((e) => e?.type)).toEqual(['instrument', 'mark', 'instrument', 'mark']);
  });

  it('with partial=true applies the valid events and lists the invalid ones', async () => {
    const res = await post(
      ndjson([
        instrument(),
        { type: 'mark', ts: T0, symbol: 'BTC-PERP' },
        mark(101, T0 + 2),
        mark(1, T0, 'NOPE'),
      ]).concat('{oops\n'),
      '?partial=true',
    );
    expect(res.status).toBe(200);
    const body = (await res.json()) as { accepted: number; rejected: { index: number; field: string }[] };
    expect(body.accepted).toBe(2);
    expect(body.rejected.map((r) => [r.index, r.field])).toEqual([
      [1, 'price'],
      [3, 'symbol'],
      [4, '(line)'],
    ]);
    expect((await logged()).map((e) => e?.type)).toEqual(['instrument', 'mark']);
  });

  it('drops duplicate ids within a batch and across requests; events without id are never deduplicated', async () => {
    const first = await post([
      instrument(),
      mark(100, T0 + 1, 'BTC-PERP', 'm-1'),
      mark(100, T0 + 1, 'BTC-PERP', 'm-1'),
    ]);
    expect(await first.json()).toMatchObject({ accepted: 2, duplicates: 1 });
    const again = await post([
      mark(100, T0 + 1, 'BTC-PERP', 'm-1'),
      fill('a', 'buy', 1, 100, T0 + 2),
      fill('a', 'buy', 1, 100, T0 + 2),
    ]);
    expect(await again.json()).toMatchObject({ accepted: 2, duplicates: 1 });
    const events = await logged();
    expect(events.filter((e) => e?.id === 'm-1').length).toBe(1);
    expect(events.filter((e) => e?.type === 'fill').length).toBe(2);
    expect(
      Number(
        (await h.metrics.registry.getSingleMetric('preempt_events_duplicate_total')?.get())?.values[0]?.value,
      ),
    ).toBe(2);
  });

  it('with partial=true an event rejected as undeclared leaves its id free for a valid event', async () => {
    const res = await post(
      [mark(100, T0, 'ETH-PERP', 'm-1'), instrument('ETH-PERP'), mark(100, T0 + 1, 'ETH-PERP', 'm-1')],
      '?partial=true',
    );
    expect(await res.json()).toMatchObject({
      accepted: 2,
      duplicates: 0,
      rejected: [{ index: 0, field: 'symbol' }],
    });
    const events = await logged();
    expect(events.map((e) => [e?.type, e?.ts])).toEqual([
      ['instrument', T0],
      ['mark', T0 + 1],
    ]);
    // and the accepted one holds the id from now on
    expect(await (await post([mark(100, T0 + 2, 'ETH-PERP', 'm-1')])).json()).toMatchObject({
      duplicates: 1,
    });
  });

  it('writes a batch of the documented 100,000 events, each with an id, in one atomic append', async () => {
    const batch = [
      instrument(),
      ...Array.from({ length: 99_999 }, (_, i) => ({ ...deposit(`a${i % 500}`, 1, T0 + i), id: `d-${i}` })),
    ];
    const res = await post(batch);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ accepted: 100_000, duplicates: 0 });
    expect(await redis.xlen(keyspace(h.prefix).stream)).toBe(100_000);
  }, 60_000);

  it('refuses an event stamped more than PREEMPT_MAX_FUTURE_MS ahead (a clock error, microseconds), writing nothing', async () => {
    const now = Date.now();
    const ahead = await post([instrument(), deposit('a', 5, now + 3_600_000)]);
    expect(ahead.status).toBe(400);
    expect(await ahead.json()).toMatchObject({ index: 1, field: 'ts' });
    const micros = await post([instrument(), mark(100, T0 * 1000)]);
    expect(micros.status).toBe(400);
    expect(await micros.json()).toMatchObject({ index: 1, field: 'ts' });
    expect(await logged()).toEqual([]);
    // within the allowance (default 10 s): accepted
    expect((await post([instrument(), deposit('a', 5, now + 1_000)])).status).toBe(200);
  });

  it('names the NDJSON line of an error beside its index (blank lines count)', async () => {
    const body = `${JSON.stringify(instrument())}\n\n${JSON.stringify(mark(100, T0 + 1))}\n\n{"type":"mark","ts":1,"symbol":"BTC-PERP","price":0}\n`;
    const res = await post(body);
    expect(res.status).toBe(400);
    const err = (await res.json()) as Record<string, unknown>;
    expect(err).toMatchObject({ index: 2, line: 5, field: 'price' });
    expect(String(err.message)).toContain('index 2 (line 5)');
  });

  it('refuses a body that is not UTF-8 instead of replacing its bytes', async () => {
    const bytes = Buffer.concat([
      Buffer.from(`[${JSON.stringify(instrument())},{"type":"deposit","ts":${T0 + 1},"account":"caf`),
      Buffer.from([0xe9]),
      Buffer.from('","amount":5}]'),
    ]);
    const res = await h.call('POST', '/v1/events', { key: h.keys['events:write'], raw: bytes });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ field: '(body)', reason: 'not valid UTF-8' });
    expect(await logged()).toEqual([]);
  });

  it('an empty body is an empty batch', async () => {
    expect(await (await post('')).json()).toMatchObject({ accepted: 0, duplicates: 0 });
  });
});
