import { describe, expect, it } from 'vitest';
import {
  DEFAULT_POLICY_CONFIG,
  decide,
  type MarginBook,
  type PolicyConfig,
  type PolicyMemory,
  resolvePolicyConfig,
} from '../../src/margin/index.js';
import { longBtc, UNGATED_TIERS } from './fixtures.js';

/** long 10 BTC @ 10,000 (100,000 USD) on 2,500 USD: equity / MM 2.5, short of a 3-sigma hour */
const levered = longBtc(2_500);
/** the same position on 20,000 USD: equity / MM 20 */
const calm = longBtc(20_000);

const t0 = 1_000_000;
const LATER = 10 * 60_000; // ms: past the cooldown and the 5-minute reduction interval

function at(b: MarginBook, pd: number, now: number, cfg: PolicyConfig, memory?: PolicyMemory) {
  return decide({ margin: b.snapshot('a')!, instruments: b, pd, now, ...(memory ? { memory } : {}) }, cfg);
}

describe('decide: the reduce tier held by the margin ratio', () => {
  it('is off by default: an armed tier is left on pd alone, at any ratio', () => {
    expect(DEFAULT_POLICY_CONFIG.reduceTierHoldRatio).toBe(0);
    const cfg = resolvePolicyConfig(UNGATED_TIERS);
    const armed = at(levered, 0.9, t0, cfg);
    expect(armed.decision.action).toBe('REDUCE');
    const after = at(levered, 0, t0 + LATER, cfg, armed.memory);
    expect(after.memory.pdLevel).toBe(0);
    expect(after.decision.action).not.toBe('REDUCE');
    expect(after.decision.reduceOnly).toBe(false);
  });

  it('keeps the tier armed while equity / MM is below the hold ratio, reducing as at pdFull', () => {
    const cfg = resolvePolicyConfig({ ...UNGATED_TIERS, reduceTierHoldRatio: 3 });
    const armed = at(levered, 0.9, t0, cfg);
    expect(armed.decision.action).toBe('REDUCE');
    // the pd has gone, the ratio (2.5) has not recovered above 3: still armed, restricted and reduced
    const held = at(levered, 0, t0 + LATER, cfg, armed.memory);
    expect(held.memory.pdLevel).toBe(2);
    expect(held.decision.reduceOnly).toBe(true);
    expect(held.decision.action).toBe('REDUCE');
    const reason = held.decision.reasons.find((r) => r.rule === 'reduce-tier-held');
    expect(reason?.values).toMatchObject({ pd: 0, marginRatio: 2.5, reduceTierHoldRatio: 3 });
    // the audit trail keeps the pd the account had and the pd the reduction was sized with
    const sized = held.decision.reasons.find((r) => r.rule === 'pd-reduce-tier');
    expect(sized?.values).toMatchObject({ pd: 0, sizingPd: cfg.pdFull });
    expect(sized?.text).toMatch(/^pd 0\.0000 held by the margin ratio/);
    // the same look with the pd still at pdFull orders exactly as much
    const full = at(levered, cfg.pdFull, t0 + LATER, cfg, armed.memory);
    expect(held.decision.orders).toEqual(full.decision.orders);
    expect(held.decision.orders[0]!.qty).toBeGreaterThan(0);
  });

  it('lets the tier go once the ratio is at or above the hold ratio', () => {
    const cfg = resolvePolicyConfig({ ...UNGATED_TIERS, reduceTierHoldRatio: 3 });
    const armed = at(levered, 0.9, t0, cfg);
    const recovered = at(calm, 0, t0 + LATER, cfg, armed.memory);
    expect(recovered.memory.pdLevel).toBe(0);
    expect(recovered.decision.reduceOnly).toBe(false);
    expect(recovered.decision.action).toBe('HEALTHY');
  });

  it('within reduceTierHoldMs of its last armed look a disarmed account arms again below the ratio, whatever its pd', () => {
    const HOUR = 3_600_000;
    const cfg = resolvePolicyConfig({ ...UNGATED_TIERS, reduceTierHoldRatio: 3, reduceTierHoldMs: 2 * HOUR });
    const armed = at(levered, 0.9, t0, cfg);
    const recovered = at(calm, 0, t0 + LATER, cfg, armed.memory); // disarmed above the ratio
    expect(recovered.memory.pdLevel).toBe(0);
    // back below the ratio an hour after the last armed look, at a pd of 0: armed again and reduced
    const again = at(levered, 0, t0 + HOUR, cfg, recovered.memory);
    expect(again.memory.pdLevel).toBe(2);
    expect(again.decision.action).toBe('REDUCE');
    expect(again.decision.reduceOnly).toBe(true);
    // two hours after it, no longer
    const late = at(levered, 0, t0 + 2 * HOUR, cfg, recovered.memory);
    expect(late.memory.pdLevel).toBe(0);
    expect(late.decision.action).toBe('HEALTHY');
    // without a hold time only a tier still armed is held
    const noTime = resolvePolicyConfig({ ...UNGATED_TIERS, reduceTierHoldRatio: 3 });
    const off = at(
      levered,
      0,
      t0 + HOUR,
      noTime,
      at(calm, 0, t0 + LATER, noTime, at(levered, 0.9, t0, noTime).memory).memory,
    );
    expect(off.memory.pdLevel).toBe(0);
  });

  it('never arms the tier by itself: an account never armed stays healthy below the hold ratio', () => {
    const cfg = resolvePolicyConfig({
      ...UNGATED_TIERS,
      reduceTierHoldRatio: 3,
      reduceTierHoldMs: 3_600_000,
    });
    const r = at(levered, 0, t0, cfg);
    expect(r.memory.pdLevel).toBe(0);
    expect(r.decision.action).toBe('HEALTHY');
    expect(r.decision.reduceOnly).toBe(false);
  });

  it('within the pd hysteresis the tier is held by the pd, sized by it, not by the ratio', () => {
    const cfg = resolvePolicyConfig({ ...UNGATED_TIERS, reduceTierHoldRatio: 3, pdFull: 0.5 });
    const armed = at(levered, 0.9, t0, cfg);
    // 0.18 is inside pdReduce 0.2 - hysteresis 0.03: armed by the pd, scaled by 0.18 / pdFull
    const byPd = at(levered, 0.18, t0 + LATER, cfg, armed.memory);
    expect(byPd.memory.pdLevel).toBe(2);
    expect(byPd.decision.reasons.map((r) => r.rule)).not.toContain('reduce-tier-held');
    const byRatio = at(levered, 0.1, t0 + LATER, cfg, armed.memory);
    expect(byRatio.decision.reasons.map((r) => r.rule)).toContain('reduce-tier-held');
    // held by the ratio it reduces the full target, by the pd a share of it
    expect(byRatio.decision.orders[0]!.qty).toBeGreaterThan(byPd.decision.orders[0]!.qty);
  });

  it('refuses a negative hold ratio', () => {
    expect(() => resolvePolicyConfig({ reduceTierHoldRatio: -1 })).toThrow(/reduceTierHoldRatio/);
  });
});
