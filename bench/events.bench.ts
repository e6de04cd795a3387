/**
 * Event reading: validated events/s through the streaming reader (JSON.parse + zod + gate) vs a bare
 * JSON.parse of the same lines. Event ids: the id memory an evaluator shard keeps (a 7-day window of event
 * time, a generation started every half window) against one Set (what it was before, and what fails past
 * 2^24 ids), each checking and adding the ids of 12 days of events.
 */
import { Readable } from 'node:stream';
import { IdMemory } from '../src/events/id-memory.js';
import { emptyStats, readEventLines } from '../src/events/reader.js';
import { EventGate } from '../src/events/validate.js';
import { printRatio, timeIt, timeItAsync } from './report.js';

export async function run(): Promise<void> {
  const N = 300_000;
  const lines: string[] = [
    '{"type":"instrument","ts":0,"symbol":"BTC-PERP","base":"BTC","tiers":[{"maxNotional":null,"imr":0.05,"mmr":0.025}]}',
  ];
  for (let i = 1; i < N; i++) {
    lines.push(
      i % 3 === 0
        ? `{"type":"fill","ts":${i},"account":"a-${i % 5000}","symbol":"BTC-PERP","side":"buy","qty":1,"price":${7000 + (i % 50)},"fee":0.5,"liquidity":"taker"}`
        : `{"type":"mark","ts":${i},"symbol":"BTC-PERP","price":${7000 + (i % 50)}}`,
    );
  }
  const parseMs = timeIt(() => {
    for (const l of lines) JSON.parse(l);
  });
  const text = `${lines.join('\n')}\n`;
  const stats = emptyStats();
  const readMs = await timeItAsync(async () => {
    for await (const _ of readEventLines(Readable.from([text]), stats, {}, new EventGate())) {
      // consume
    }
  });
  if (stats.valid !== N) throw new Error(`read ${stats.valid} of ${N}`);
  printRatio(
    'reader: validated events/s',
    N / (readMs / 1000),
    'JSON.parse only',
    N / (parseMs / 1000),
    'events/s',
  );
  runIds();
}

function runIds(): void {
  const N = 3_000_000;
  const DAY = 86_400_000; // ms
  // 12 days of event time: the window's generations fill, rotate and are forgotten as in a running shard
  const step = (12 * DAY) / N; // ms of event time between ids
  const ids = Array.from({ length: N }, (_, i) => `fill-${i}-${(i * 2654435761) % 1e9}`);
  // hash every string once first (V8 caches a string's hash): neither side pays for it
  new Set(ids).clear();
  const memory = new IdMemory(7 * DAY);
  const memoryMs = timeIt(() => {
    for (let i = 0; i < N; i++) {
      const id = ids[i] as string;
      if (!memory.has(id)) memory.add(id, i * step);
    }
  });
  const set = new Set<string>();
  const setMs = timeIt(() => {
    for (let i = 0; i < N; i++) {
      const id = ids[i] as string;
      if (!set.has(id)) set.add(id);
    }
  });
  if (memory.size >= set.size)
    throw new Error(`the window forgot nothing: ${memory.size} of ${set.size} ids`);
  printRatio(
    `event ids: check and add, 7-day window (${memory.generations} generations held)`,
    N / (memoryMs / 1000),
    'one Set',
    N / (setMs / 1000),
    'ids/s',
  );
}
