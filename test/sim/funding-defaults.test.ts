import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { buildMarket, loadScenario, parseScenario } from '../../src/sim/index.js';

/** every settlement's rates over the scenario's minutes, and where they came from */
function settlements(loaded: ReturnType<typeof loadScenario>) {
  const market = buildMarket(loaded, 1, 50);
  const minutes = (Date.parse(loaded.scenario.end) - Date.parse(loaded.scenario.start)) / 60_000;
  const rates: number[] = [];
  for (let m = 0; m <= minutes; m++) rates.push(...(market.fundingAt(m) ?? []));
  return { rates, sources: market.fundingSources };
}

describe('funding without a history (the premium model, defaults fitted to the real settlements)', () => {
  it('settles the flash crash at the typical real rate, whatever the fall', () => {
    const { rates, sources } = settlements(loadScenario('flash-crash'));
    expect(sources.history).toBe(0);
    expect(sources.premium).toBeGreaterThan(0);
    // two instruments per settlement
    expect(rates.length).toBe(2 * sources.premium);
    for (const r of rates) expect(r).toBe(0.0001);
  });

  it('clamps a scenario-set slope at the largest rate ever settled (+-0.003)', () => {
    const loaded = loadScenario('flash-crash');
    const raw = JSON.parse(readFileSync(loaded.source, 'utf8')) as Record<string, unknown>;
    // the unfitted slope of the defaults before 2026-12-06: the 18% fall drives the rate past the clamp
    const steep = parseScenario({ ...raw, funding: { premiumK: 0.05 } }, 'steep', loaded.dir);
    const { rates } = settlements(steep);
    expect(Math.min(...rates)).toBe(-0.003);
    for (const r of rates) expect(Math.abs(r)).toBeLessThanOrEqual(0.003);
  });
});
