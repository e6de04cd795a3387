import { createWriteStream, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { emptyStats, readEventsFile } from '../src/events/reader.js';

const LINES = 1_000_000;
const dir = mkdtempSync(join(tmpdir(), 'preempt-large-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function writeHistory(path: string): Promise<void> {
  const out = createWriteStream(path);
  const header = `{"type":"instrument","ts":0,"symbol":"BTC-PERP","base":"BTC","tiers":[{"maxNotional":null,"imr":0.05,"mmr":0.025}]}\n`;
  out.write(header);
  const chunk: string[] = [];
  for (let i = 1; i < LINES; i++) {
    const side = i % 2 === 0 ? 'buy' : 'sell';
    chunk.push(
      `{"type":"trade","ts":${i},"symbol":"BTC-PERP","price":${7000 + (i % 500)},"qty":${1 + (i % 7)},"aggressor":"${side}","note":"padding-to-make-the-line-longer-than-its-parsed-object"}`,
    );
    if (chunk.length === 20_000 || i === LINES - 1) {
      if (!out.write(`${chunk.join('\n')}\n`)) await new Promise<void>((r) => out.once('drain', () => r()));
      chunk.length = 0;
    }
  }
  await new Promise<void>((resolve, reject) => out.end((e?: Error | null) => (e ? reject(e) : resolve())));
}

describe('reading a 1,000,000-line history', () => {
  it('validates every line while heap use stays far below the file size', async () => {
    const path = join(dir, 'big.jsonl');
    await writeHistory(path);
    const fileBytes = statSync(path).size;
    const stats = emptyStats();
    const before = process.memoryUsage().heapUsed;
    let peak = before;
    let n = 0;
    for await (const _ of readEventsFile(path, stats)) {
      if (++n % 25_000 === 0) peak = Math.max(peak, process.memoryUsage().heapUsed);
    }
    expect(stats.valid).toBe(LINES);
    expect(stats.byType.trade).toBe(LINES - 1);
    const growth = peak - before;
    // the file is ~145 MB; holding it (or its parsed events) would need several times that
    expect(fileBytes).toBeGreaterThan(120 * 2 ** 20);
    expect(growth).toBeLessThan(64 * 2 ** 20);
  }, 120_000);
});
