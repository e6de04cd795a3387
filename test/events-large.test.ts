import { execFile } from 'node:child_process';
import { createWriteStream, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';

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

const run = promisify(execFile);
const FIXTURE = join(import.meta.dirname, 'fixtures/read-history.ts');
/** old-space cap of the reading process, MB: far below the file (~145 MB) and its parsed events */
const HEAP_CAP_MB = 64;

async function readInCappedProcess(mode: 'stream' | 'whole', path: string) {
  const args = [
    `--max-old-space-size=${HEAP_CAP_MB}`,
    '--import',
    import.meta.resolve('tsx'),
    FIXTURE,
    mode,
    path,
  ];
  try {
    const { stdout } = await run(process.execPath, args, { maxBuffer: 1 << 20 });
    return { ok: true as const, stats: JSON.parse(stdout) as { valid: number; byType: { trade: number } } };
  } catch (e) {
    return { ok: false as const, error: String((e as Error).message).slice(0, 200) };
  }
}

describe('reading a 1,000,000-line history', () => {
  it(`validates every line in a process whose heap is capped at ${HEAP_CAP_MB} MB, where loading the file fails`, async () => {
    const path = join(dir, 'big.jsonl');
    await writeHistory(path);
    expect(statSync(path).size).toBeGreaterThan(120 * 2 ** 20);
    const streamed = await readInCappedProcess('stream', path);
    expect(streamed.ok).toBe(true);
    if (streamed.ok) {
      expect(streamed.stats.valid).toBe(LINES);
      expect(streamed.stats.byType.trade).toBe(LINES - 1);
    }
    // the cap is real: the same process cannot hold the whole file and its events
    const whole = await readInCappedProcess('whole', path);
    expect(whole.ok).toBe(false);
  }, 180_000);
});
