import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { emptyStats, readEventsFile } from '../src/events/reader.js';
import { EVENT_TYPES } from '../src/events/schema.js';
import { EventGate, InvalidEventError, parseEvent } from '../src/events/validate.js';

const dir = mkdtempSync(join(tmpdir(), 'preempt-events-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const SPEC_EXAMPLE = join(import.meta.dirname, 'fixtures/spec-example.jsonl');

const instrument = {
  type: 'instrument',
  ts: 1,
  symbol: 'BTC-PERP',
  base: 'BTC',
  tiers: [
    { maxNotional: 250000, imr: 0.02, mmr: 0.01 },
    { maxNotional: null, imr: 0.1, mmr: 0.05 },
  ],
};

/** One valid example of every event type, in an order a history may have them. */
const oneOfEach: Record<string, unknown>[] = [
  instrument,
  { type: 'mark', ts: 2, symbol: 'BTC-PERP', price: 7900.5 },
  { type: 'trade', ts: 3, symbol: 'BTC-PERP', price: 7901, qty: 0.5, aggressor: 'sell' },
  { type: 'book', ts: 4, symbol: 'BTC-PERP', bid: 7900, ask: 7901, bidDepth: 120, askDepth: 80 },
  { type: 'funding', ts: 5, symbol: 'BTC-PERP', rate: -0.0001 },
  { type: 'deposit', ts: 6, account: 'a', amount: 1000 },
  { type: 'withdrawal', ts: 7, account: 'a', amount: 10 },
  { type: 'order', ts: 8, account: 'a', orderId: 'o1', symbol: 'BTC-PERP', side: 'buy', qty: 1, price: 7000 },
  { type: 'cancel', ts: 9, account: 'a', orderId: 'o1' },
  {
    type: 'fill',
    ts: 10,
    account: 'a',
    symbol: 'BTC-PERP',
    side: 'buy',
    qty: 1,
    price: 7901,
    liquidity: 'taker',
  },
  {
    type: 'liquidation',
    ts: 11,
    account: 'a',
    symbol: 'BTC-PERP',
    side: 'sell',
    qty: 1,
    price: 7000,
    fee: 35,
  },
  { type: 'adl', ts: 12, account: 'b', symbol: 'BTC-PERP', side: 'buy', qty: 1, price: 7000 },
  { type: 'bankruptcy', ts: 13, account: 'a', deficit: 12.5 },
];

function writeLines(name: string, lines: unknown[]): string {
  const path = join(dir, name);
  writeFileSync(path, `${lines.map((l) => (typeof l === 'string' ? l : JSON.stringify(l))).join('\n')}\n`);
  return path;
}

async function readAll(path: string, skipInvalid = false) {
  const stats = emptyStats();
  const events = [];
  for await (const e of readEventsFile(path, stats, { skipInvalid })) events.push(e);
  return { stats, events };
}

describe('event schemas', () => {
  it('accepts one valid event of every type and applies documented defaults', () => {
    expect(oneOfEach.map((e) => e.type).sort()).toEqual([...EVENT_TYPES].sort());
    for (const raw of oneOfEach) {
      const parsed = parseEvent(raw);
      expect(parsed.ok, JSON.stringify(raw)).toBe(true);
    }
    const inst = parseEvent(instrument);
    expect(inst.ok && inst.event.type === 'instrument' && inst.event.contractSize).toBe(1);
    expect(inst.ok && inst.event.type === 'instrument' && inst.event.liquidationFeeRate).toBe(0.005);
    const fill = parseEvent(oneOfEach[9]);
    expect(fill.ok && fill.event.type === 'fill' && fill.event.fee).toBe(0);
    const order = parseEvent(oneOfEach[7]);
    expect(order.ok && order.event.type === 'order' && order.event.reduceOnly).toBe(false);
  });

  it('ignores unknown extra fields', () => {
    const parsed = parseEvent({ type: 'mark', ts: 1, symbol: 'X', price: 2, venueSeq: 99 });
    expect(parsed.ok && 'venueSeq' in parsed.event).toBe(false);
  });

  const mark = { type: 'mark', ts: 1, symbol: 'X', price: 2 };
  const tiers = instrument.tiers;
  const invalid: [string, Record<string, unknown>, string][] = [
    ['missing type', { ts: 1, symbol: 'X', price: 1 }, 'type'],
    ['unknown type', { ...mark, type: 'quote' }, 'type'],
    ['non-integer ts', { ...mark, ts: 1.5 }, 'ts'],
    ['string ts', { ...mark, ts: '1' }, 'ts'],
    ['negative ts', { ...mark, ts: -1 }, 'ts'],
    ['id too long', { ...mark, id: 'x'.repeat(129) }, 'id'],
    ['string number', { ...mark, price: '2' }, 'price'],
    ['price zero', { ...mark, price: 0 }, 'price'],
    ['missing price', { type: 'mark', ts: 1, symbol: 'X' }, 'price'],
    ['contractSize <= 0', { ...instrument, contractSize: 0 }, 'contractSize'],
    ['empty tiers', { ...instrument, tiers: [] }, 'tiers'],
    ['mmr >= imr', { ...instrument, tiers: [{ maxNotional: null, imr: 0.05, mmr: 0.05 }] }, 'tiers.0.mmr'],
    ['mmr <= 0', { ...instrument, tiers: [{ maxNotional: null, imr: 0.05, mmr: 0 }] }, 'tiers.0.mmr'],
    ['imr > 1', { ...instrument, tiers: [{ maxNotional: null, imr: 1.5, mmr: 0.5 }] }, 'tiers.0.imr'],
    ['null maxNotional not last', { ...instrument, tiers: [tiers[1], tiers[0]] }, 'tiers.0.maxNotional'],
    [
      'tiers unsorted',
      {
        ...instrument,
        tiers: [
          { maxNotional: 500, imr: 0.02, mmr: 0.01 },
          { maxNotional: 100, imr: 0.05, mmr: 0.02 },
        ],
      },
      'tiers.1.maxNotional',
    ],
    [
      'maxNotional <= 0',
      { ...instrument, tiers: [{ maxNotional: 0, imr: 0.1, mmr: 0.05 }] },
      'tiers.0.maxNotional',
    ],
    ['negative liquidationFeeRate', { ...instrument, liquidationFeeRate: -0.1 }, 'liquidationFeeRate'],
    ['trade aggressor', { ...oneOfEach[2], aggressor: 'up' }, 'aggressor'],
    ['book bid > ask', { ...oneOfEach[3], bid: 7902 }, 'ask'],
    ['book negative depth', { ...oneOfEach[3], bidDepth: -1 }, 'bidDepth'],
    ['funding rate string', { ...oneOfEach[4], rate: 'x' }, 'rate'],
    ['deposit amount 0', { ...oneOfEach[5], amount: 0 }, 'amount'],
    ['withdrawal missing account', { type: 'withdrawal', ts: 1, amount: 5 }, 'account'],
    ['order qty 0', { ...oneOfEach[7], qty: 0 }, 'qty'],
    ['order side', { ...oneOfEach[7], side: 'long' }, 'side'],
    ['order reduceOnly string', { ...oneOfEach[7], reduceOnly: 'yes' }, 'reduceOnly'],
    ['cancel missing orderId', { type: 'cancel', ts: 1, account: 'a' }, 'orderId'],
    ['fill liquidity', { ...oneOfEach[9], liquidity: 'both' }, 'liquidity'],
    ['fill negative price', { ...oneOfEach[9], price: -5 }, 'price'],
    ['liquidation negative fee', { ...oneOfEach[10], fee: -1 }, 'fee'],
    ['liquidation missing fee', { ...oneOfEach[10], fee: undefined }, 'fee'],
    ['adl qty 0', { ...oneOfEach[11], qty: 0 }, 'qty'],
    ['bankruptcy deficit 0', { ...oneOfEach[12], deficit: 0 }, 'deficit'],
  ];
  it.each(invalid)('rejects %s naming the field', (_label, raw, field) => {
    const parsed = parseEvent(raw);
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) {
      expect(parsed.field).toBe(field);
      expect(parsed.reason.length).toBeGreaterThan(0);
    }
  });

  it('rejects a non-object line and an infinite number (1e400)', () => {
    expect(parseEvent([1]).ok).toBe(false);
    const inf = parseEvent(JSON.parse('{"type":"mark","ts":1,"symbol":"X","price":1e400}'));
    expect(inf.ok === false && inf.field).toBe('price');
  });
});

describe('EventGate', () => {
  it('rejects events on an undeclared instrument and records nothing for them', () => {
    const gate = new EventGate();
    const r = gate.check({ type: 'mark', ts: 1, symbol: 'BTC-PERP', price: 1, id: 'm1' });
    expect(r).toMatchObject({ kind: 'invalid', field: 'symbol' });
    expect(gate.hasSeen('m1')).toBe(false);
    expect(gate.check(instrument).kind).toBe('event');
    expect(gate.check({ type: 'mark', ts: 2, symbol: 'BTC-PERP', price: 1, id: 'm1' }).kind).toBe('event');
    expect(gate.check({ type: 'mark', ts: 3, symbol: 'BTC-PERP', price: 2, id: 'm1' }).kind).toBe(
      'duplicate',
    );
  });

  it('accepts account events that name no symbol before any instrument', () => {
    expect(new EventGate().check(oneOfEach[5]).kind).toBe('event');
  });
});

describe('readEventsFile', () => {
  it("reads the spec's example: 7 valid events", async () => {
    const { stats, events } = await readAll(SPEC_EXAMPLE);
    expect(stats.valid).toBe(7);
    expect(events.map((e) => e.event.type)).toEqual([
      'instrument',
      'mark',
      'deposit',
      'order',
      'fill',
      'mark',
      'liquidation',
    ]);
    expect(stats.byType.mark).toBe(2);
  });

  it('stops at the first invalid line with line and field', async () => {
    const path = writeLines('bad.jsonl', [
      instrument,
      oneOfEach[1],
      { ...oneOfEach[2], qty: -1 },
      oneOfEach[3],
    ]);
    await expect(readAll(path)).rejects.toThrow('line 3: field qty: must be > 0');
    await expect(readAll(path)).rejects.toBeInstanceOf(InvalidEventError);
  });

  it('reports malformed JSON with its line', async () => {
    const path = writeLines('json.jsonl', [instrument, '{"type":"mark",']);
    await expect(readAll(path)).rejects.toThrow(`${path}: line 2: field (line): invalid JSON`);
  });

  it('skips and counts invalid lines when asked, and never yields them', async () => {
    const path = writeLines('skip.jsonl', [
      { type: 'mark', ts: 0, symbol: 'BTC-PERP', price: 1 },
      instrument,
      'not json',
      oneOfEach[1],
      { ...oneOfEach[5], amount: -1 },
      oneOfEach[5],
    ]);
    const { stats, events } = await readAll(path, true);
    expect(stats.skipped).toBe(3);
    expect(stats.valid).toBe(3);
    expect(stats.firstInvalid).toMatchObject({ line: 1, field: 'symbol' });
    expect(events.map((e) => e.line)).toEqual([2, 4, 6]);
  });

  it('drops and counts duplicate ids, keeping the first', async () => {
    const path = writeLines('dup.jsonl', [
      instrument,
      { ...oneOfEach[5], id: 'd1', amount: 100 },
      { ...oneOfEach[5], id: 'd1', amount: 999 },
      { ...oneOfEach[5], id: 'd2', amount: 5 },
    ]);
    const { stats, events } = await readAll(path);
    expect(stats.duplicates).toBe(1);
    const amounts = events.flatMap((e) => (e.event.type === 'deposit' ? [e.event.amount] : []));
    expect(amounts).toEqual([100, 5]);
  });

  it('reads gzip the same as plain text', async () => {
    const plain = writeLines('all.jsonl', oneOfEach);
    const gz = join(dir, 'all.jsonl.gz');
    writeFileSync(gz, gzipSync(`${oneOfEach.map((e) => JSON.stringify(e)).join('\n')}\n`));
    const a = await readAll(plain);
    const b = await readAll(gz);
    expect(b.stats.valid).toBe(oneOfEach.length);
    expect(b.events).toEqual(a.events);
  });
});

describe('readEventsFile: framing, encoding and order (spec: Encoding)', () => {
  const deposit = (ts: number, account: string, amount: number, id?: string) => ({
    type: 'deposit',
    ts,
    account,
    amount,
    ...(id ? { id } : {}),
  });
  const writeBytes = (name: string, bytes: Buffer) => {
    const path = join(dir, name);
    writeFileSync(path, bytes);
    return path;
  };
  const read = async (path: string, opts: { skipInvalid?: boolean; toleranceMs?: number } = {}) => {
    const stats = emptyStats();
    const invalid: { line: number; field: string; reason: string }[] = [];
    const events = [];
    for await (const e of readEventsFile(path, stats, {
      ...opts,
      onInvalid: (line, issue) => invalid.push({ line, ...issue }),
    }))
      events.push(e);
    return { stats, events, invalid };
  };

  it('refuses an event earlier than one before it, naming its line and ts, and records nothing of it', async () => {
    const path = writeLines('order.jsonl', [
      instrument,
      deposit(3000, 'a', 5),
      { ...instrument, ts: 2000, symbol: 'ETH-PERP', base: 'ETH' },
      { type: 'mark', ts: 3000, symbol: 'ETH-PERP', price: 1 },
      deposit(2000, 'a', 7, 'late-1'),
      deposit(3000, 'a', 9, 'late-1'),
    ]);
    await expect(read(path)).rejects.toThrow(
      'line 3: field ts: 2000 is earlier than 3000: a history file is ordered by ts',
    );
    const { stats, events, invalid } = await read(path, { skipInvalid: true });
    // the out-of-order instrument declared nothing (so the ETH mark is undeclared), the late deposit's id was
    // not taken (so the in-order deposit with the same id is read)
    expect(invalid.map((i) => [i.line, i.field])).toEqual([
      [3, 'ts'],
      [4, 'symbol'],
      [5, 'ts'],
    ]);
    expect(stats.skipped).toBe(3);
    expect(events.map((e) => e.line)).toEqual([1, 2, 6]);
    expect(stats.outOfOrder).toBe(0);
  });

  it('reads events within toleranceMs of the latest, counted as out of order, and refuses older ones', async () => {
    const path = writeLines('tolerance.jsonl', [
      instrument,
      deposit(3000, 'a', 5),
      deposit(2500, 'a', 7),
      deposit(1999, 'a', 9),
    ]);
    const { stats, events, invalid } = await read(path, { skipInvalid: true, toleranceMs: 500 });
    expect(events.map((e) => e.line)).toEqual([1, 2, 3]);
    expect(stats.outOfOrder).toBe(1);
    expect(invalid).toEqual([
      { line: 4, field: 'ts', reason: expect.stringMatching(/^1999 is earlier than 2500/) },
    ]);
  });

  it('counts a resent event as a duplicate whatever its ts', async () => {
    const path = writeLines('dup-late.jsonl', [
      instrument,
      deposit(3000, 'a', 5, 'x'),
      deposit(2000, 'a', 5, 'x'),
    ]);
    const { stats, events } = await read(path);
    expect(stats.duplicates).toBe(1);
    expect(events).toHaveLength(2);
  });

  it('refuses bytes that are not UTF-8 instead of replacing them, and reads real UTF-8', async () => {
    const lines = [
      Buffer.from(`${JSON.stringify(instrument)}\n`),
      Buffer.from(`${JSON.stringify(deposit(10, 'café', 5))}\n`),
      Buffer.concat([
        Buffer.from('{"type":"deposit","ts":11,"account":"caf'),
        Buffer.from([0xe9]),
        Buffer.from('","amount":7}\n'),
      ]),
    ];
    const path = writeBytes('latin1.jsonl', Buffer.concat(lines));
    await expect(read(path)).rejects.toThrow('line 3: field (line): not valid UTF-8');
    const { events } = await read(path, { skipInvalid: true });
    expect(events.map((e) => (e.event.type === 'deposit' ? e.event.account : e.event.type))).toEqual([
      'instrument',
      'café',
    ]);
  });

  it('ends lines at \\n only: a lone \\r is whitespace inside the line, CRLF ends a line, a BOM is ignored', async () => {
    const text =
      `\ufeff${JSON.stringify(instrument)}\r\n` +
      '{"type":"mark",\r"ts":1001,"symbol":"BTC-PERP","price":2}\r\n' +
      '\r\n' +
      '{"type":"mark","ts":1002,"symbol":"BTC-PERP","price":0}\n';
    const path = writeBytes('cr.jsonl', Buffer.from(text, 'utf8'));
    const { stats, events, invalid } = await read(path, { skipInvalid: true });
    expect(events.map((e) => [e.line, e.event.type])).toEqual([
      [1, 'instrument'],
      [2, 'mark'],
    ]);
    expect(stats.blank).toBe(1);
    expect(invalid).toEqual([{ line: 4, field: 'price', reason: expect.any(String) }]);
    expect(stats.lines).toBe(4);
  });

  it('names the line where a truncated gzip file breaks off', async () => {
    const full = gzipSync(`${oneOfEach.map((e) => JSON.stringify(e)).join('\n')}\n`.repeat(1));
    const path = writeBytes('cut.jsonl.gz', full.subarray(0, full.length - 12));
    await expect(read(path)).rejects.toThrow(/: line \d+: field \(file\): gzip stream broken off or corrupt/);
    await expect(read(path)).rejects.toThrow(path);
  });
});
