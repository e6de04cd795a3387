/**
 * Event reading: validated events/s through the streaming reader (JSON.parse + zod + gate) vs a bare
 * JSON.parse of the same lines.
 */
import { Readable } from 'node:stream';
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
}
