import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { CanonicalEvent } from '../../src/events/schema.js';
import { loadScenario, MemorySink, ScenarioError, simulate } from '../../src/sim/index.js';
import { withoutInstruments } from '../../src/sim/scenario/variant.js';

const dir = mkdtempSync(join(tmpdir(), 'preempt-variant-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('a scenario without some instruments', () => {
  it('keeps the window, funding and other instruments, and its data paths resolve from where it is written', async () => {
    const original = loadScenario('jan-2022');
    const outDir = join(dir, 'deeper', 'still');
    const variant = withoutInstruments(original, ['SOL-PERP'], outDir);
    expect(variant.name).toBe('jan-2022-without-SOL-PERP');
    expect(variant.instruments.map((i) => i.symbol)).toEqual(['BTC-PERP', 'ETH-PERP']);
    expect(variant.start).toBe(original.scenario.start);
    expect(variant.end).toBe(original.scenario.end);
    expect(variant.population).toEqual(original.scenario.population);
    // written elsewhere, it reads the very bar and funding files the original reads
    mkdirSync(outDir, { recursive: true });
    const file = join(outDir, 'variant.json');
    writeFileSync(file, JSON.stringify(variant));
    const reloaded = loadScenario(file);
    const sink = new MemorySink();
    const summary = await simulate(reloaded, { accounts: 40, seed: 1, sink });
    expect(summary.events).toBe(sink.events.length);
    const symbolsMarked = new Set(
      sink.events.flatMap((e: CanonicalEvent) => (e.type === 'mark' ? [e.symbol] : [])),
    );
    expect([...symbolsMarked].sort()).toEqual(['BTC-PERP', 'ETH-PERP']);
  });

  it('refuses an instrument the scenario lacks, and leaving none', () => {
    const original = loadScenario('jan-2022');
    expect(() => withoutInstruments(original, ['DOGE-PERP'], dir)).toThrow(ScenarioError);
    expect(() => withoutInstruments(original, ['DOGE-PERP'], dir)).toThrow(/no instrument DOGE-PERP/);
    expect(() => withoutInstruments(original, ['BTC-PERP', 'ETH-PERP', 'SOL-PERP'], dir)).toThrow(
      /no instrument would be left/,
    );
    expect(() => withoutInstruments(original, [], dir)).toThrow(ScenarioError);
  });
});
