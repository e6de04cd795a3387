import { describe, expect, it } from 'vitest';
import { DEFAULT_POLICY_CONFIG, decide, resolvePolicyConfig } from '../../src/margin/index.js';
import { leverageCapHeld } from '../../src/margin/policy.js';
import { longBtc, UNGATED_TIERS } from './fixtures.js';

/** long 10 BTC @ 10,000 (100,000 USD) on 2,500 USD: 40x, equity / MM 2.5, short of a 3-sigma hour */
const levered = longBtc(2_500);
/** the same position on 20,000 USD: 5x, survives the 3-sigma hour (no REDUCE) */
const calm = longBtc(20_000);

const t0 = 1_000_000;
const HOUR = 3_600_000;

describe('decide: leverage cap after early reduction', () => {
  it('is off by default: no decision carries a cap', () => {
    expect(DEFAULT_POLICY_CONFIG.leverageCapAfterReduce).toBe(0);
    const cfg = resolvePolicyConfig(UNGATED_TIERS);
    const r = decide({ margin: levered.snapshot('a')!, instruments: levered, pd: 0.9, now: t0 }, cfg);
    expect(r.decision.action).toBe('REDUCE');
    expect(r.decision.leverageCap).toBeNull();
    expect(leverageCapHeld(r.memory, t0, cfg)).toBeNull();
  });

  it('caps an account from its REDUCE until leverageCapHoldMs after its last one', () => {
    const cfg = resolvePolicyConfig({
      ...UNGATED_TIERS,
      leverageCapAfterReduce: 8,
      leverageCapHoldMs: 2 * HOUR,
    });
    const first = decide({ margin: levered.snapshot('a')!, instruments: levered, pd: 0.9, now: t0 }, cfg);
    expect(first.decision.action).toBe('REDUCE');
    expect(first.decision.leverageCap).toBe(8);
    const reason = first.decision.reasons.find((r) => r.rule === 'leverage-cap');
    expect(reason?.values).toMatchObject({
      leverageCap: 8,
      lastReduceAt: t0,
      holdMs: 2 * HOUR,
      leverage: 40,
    });
    expect(first.decision.rule).not.toBe('leverage-cap'); // never the deciding rule

    // pd has cleared an hour later: still capped (the cap follows the last REDUCE, not the signal)
    const later = decide(
      { margin: calm.snapshot('a')!, instruments: calm, pd: 0, now: t0 + HOUR, memory: first.memory },
      cfg,
    );
    expect(later.decision.action).toBe('HEALTHY');
    expect(later.decision.leverageCap).toBe(8);
    const expired = decide(
      { margin: calm.snapshot('a')!, instruments: calm, pd: 0, now: t0 + 2 * HOUR, memory: later.memory },
      cfg,
    );
    expect(expired.decision.leverageCap).toBeNull();
    expect(expired.decision.reasons.map((r) => r.rule)).not.toContain('leverage-cap');

    // an account not scored (flat) keeps it for the same time
    expect(leverageCapHeld(first.memory, t0 + 2 * HOUR - 1, cfg)).toBe(8);
    expect(leverageCapHeld(first.memory, t0 + 2 * HOUR, cfg)).toBeNull();
    expect(leverageCapHeld(undefined, t0, cfg)).toBeNull();
  });

  it('a WATCH without a REDUCE, or rules only, sets no cap', () => {
    const cfg = resolvePolicyConfig({ ...UNGATED_TIERS, leverageCapAfterReduce: 8 });
    const watch = decide({ margin: calm.snapshot('a')!, instruments: calm, pd: 0.9, now: t0 }, cfg);
    expect(watch.decision.action).toBe('WATCH'); // armed, but 5x already survives the move
    expect(watch.decision.leverageCap).toBeNull();
    const rules = decide({ margin: levered.snapshot('a')!, instruments: levered, pd: null, now: t0 }, cfg);
    expect(rules.decision.leverageCap).toBeNull();
  });

  it('a negative cap or hold is refused with the field named', () => {
    expect(() => resolvePolicyConfig({ leverageCapAfterReduce: -1 })).toThrow(/leverageCapAfterReduce/);
    expect(() => resolvePolicyConfig({ leverageCapHoldMs: Number.NaN })).toThrow(/leverageCapHoldMs/);
  });
});

describe('decide: a leverage cap that follows the REDUCE', () => {
  it('caps at the leverage the last REDUCE left, or the fixed cap if lower, for the same hold', () => {
    const follows = resolvePolicyConfig({ ...UNGATED_TIERS, leverageCapFollowsReduce: true });
    const r = decide({ margin: levered.snapshot('a')!, instruments: levered, pd: 0.9, now: t0 }, follows);
    expect(r.decision.action).toBe('REDUCE');
    // the leverage after the planned orders, at the mark: what is left over the estimated equity after
    const left = levered.snapshot('a')!.notional - r.decision.orders.reduce((n, o) => n + o.notional, 0);
    const expected = left / r.decision.equityAfter;
    expect(expected).toBeGreaterThan(0);
    expect(expected).toBeLessThan(40); // below where it was
    expect(r.decision.leverageCap).toBeCloseTo(expected, 9);
    expect(r.memory.reducedLeverage).toBeCloseTo(expected, 9);
    // with a fixed cap the lower of the two applies
    const both = resolvePolicyConfig({ ...follows, leverageCapAfterReduce: 1 });
    expect(leverageCapHeld(r.memory, t0 + 1, both)).toBe(1);
    expect(leverageCapHeld(r.memory, t0 + 1, { ...both, leverageCapAfterReduce: 1_000 })).toBeCloseTo(
      expected,
      9,
    );
    expect(leverageCapHeld(r.memory, t0 + follows.leverageCapHoldMs, follows)).toBeNull();
    // the field is carried through later decisions
    const later = decide(
      { margin: calm.snapshot('a')!, instruments: calm, pd: 0, now: t0 + HOUR, memory: r.memory },
      follows,
    );
    expect(later.decision.leverageCap).toBeCloseTo(expected, 9);
    expect(() => resolvePolicyConfig({ leverageCapFollowsReduce: 1 as unknown as boolean })).toThrow(
      /leverageCapFollowsReduce must be true or false/,
    );
  });
});
