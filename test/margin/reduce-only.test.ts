import { describe, expect, it } from 'vitest';
import {
  DEFAULT_POLICY_CONFIG,
  decide,
  type PolicyMemory,
  resolvePolicyConfig,
} from '../../src/margin/index.js';
import { reduceOnlyHeld } from '../../src/margin/policy.js';
import { longBtc, UNGATED_TIERS } from './fixtures.js';

/** long 10 BTC @ 10,000 with 20,000 USD: far above MM */
const b = longBtc(20_000);

function walk(
  pds: (number | null)[],
  cfg = resolvePolicyConfig({ ...UNGATED_TIERS, reduceOnlyWhileFlagged: true }),
) {
  let memory: PolicyMemory | undefined;
  return pds.map((pd, i) => {
    const r = decide(
      {
        margin: b.snapshot('a')!,
        instruments: b,
        pd,
        now: 1_000_000 + i * 60_000,
        ...(memory ? { memory } : {}),
      },
      cfg,
    );
    memory = r.memory;
    return r.decision;
  });
}

describe('decide: reduce-only while flagged', () => {
  it('is on by default; switched off it never restricts', () => {
    expect(DEFAULT_POLICY_CONFIG.reduceOnlyWhileFlagged).toBe(true);
    const off = resolvePolicyConfig({ ...UNGATED_TIERS, reduceOnlyWhileFlagged: false });
    const ds = walk([0.9, 0.9, 0.05], off);
    expect(ds.map((d) => d.reduceOnly)).toEqual([false, false, false]);
    expect(ds.flatMap((d) => d.reasons.map((r) => r.rule))).not.toContain('reduce-only');
  });

  it('follows the armed reduce tier with its hysteresis, also when no REDUCE order is needed', () => {
    // pdReduce 0.2, hysteresis 0.03: armed at 0.25, kept at 0.18, left at 0.16; rules only never restricts
    const ds = walk([0.1, 0.25, 0.25, 0.18, 0.16, 0.5, null]);
    expect(ds.map((d) => d.reduceOnly)).toEqual([false, true, true, true, false, true, false]);
    // far above MM: the account already survives the k-sigma move, so no order (WATCH), yet it is restricted
    expect(ds[1]!.action).toBe('WATCH');
    const restricted = ds[1]!;
    expect(restricted.reasons.map((r) => r.rule)).toContain('reduce-only');
    expect(restricted.rule).not.toBe('reduce-only'); // never the deciding rule
  });

  it('an account that went flat while restricted stays restricted for reduceOnlyHoldMs after its last flagged look', () => {
    const cfg = resolvePolicyConfig({
      ...UNGATED_TIERS,
      reduceOnlyWhileFlagged: true,
      reduceOnlyHoldMs: 1_800_000,
    });
    const t0 = 1_000_000;
    const flagged = decide({ margin: b.snapshot('a')!, instruments: b, pd: 0.5, now: t0 }, cfg).memory;
    expect(flagged.flaggedAt).toBe(t0);
    expect(reduceOnlyHeld(flagged, t0 + 1_800_000 - 1, cfg)).toBe(true);
    expect(reduceOnlyHeld(flagged, t0 + 1_800_000, cfg)).toBe(false);
    expect(reduceOnlyHeld(flagged, t0 + 1, { ...cfg, reduceOnlyHoldMs: 0 })).toBe(false); // lifted when flat
    const off = { ...cfg, reduceOnlyWhileFlagged: false };
    expect(reduceOnlyHeld(flagged, t0 + 60_000, off)).toBe(false); // restriction off
    const cleared = decide(
      { margin: b.snapshot('a')!, instruments: b, pd: 0.01, now: t0 + 60_000, memory: flagged },
      cfg,
    ).memory;
    expect(reduceOnlyHeld(cleared, t0 + 120_000, cfg)).toBe(false); // the signal cleared before it went flat
    expect(reduceOnlyHeld(undefined, t0, cfg)).toBe(false);
  });

  it('a boolean field is validated as one', () => {
    expect(() => resolvePolicyConfig({ reduceOnlyWhileFlagged: 1 as unknown as boolean })).toThrow(
      /reduceOnlyWhileFlagged must be true or false/,
    );
    expect(resolvePolicyConfig({ reduceOnlyWhileFlagged: true }).reduceOnlyWhileFlagged).toBe(true);
  });
});
