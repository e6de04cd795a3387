/**
 * Tier lookup: a position's tier is the first whose `maxNotional >= notional` (null = unbounded). The
 * object path and the typed-array batch path both call `tierIndexOf` so they pick the same tier.
 */
import type { Tier } from '../events/schema.js';

/** USD upper bound of a tier; null (unbounded) becomes +Infinity. */
export function tierMax(tier: Tier): number {
  return tier.maxNotional === null ? Number.POSITIVE_INFINITY : tier.maxNotional;
}

/**
 * Index of the tier for a notional (USD). A notional above every bounded tier with no unbounded tier
 * falls in the last tier (the venue's largest requirement), so a lookup always succeeds.
 */
export function tierIndexOf(tiers: readonly Tier[], notional: number): number {
  const last = tiers.length - 1;
  for (let i = 0; i < last; i++) {
    if (tierMax(tiers[i]!) >= notional) return i;
  }
  return last;
}

/** Same rule over a flat table (batch path): `maxes[start .. start+count)` as +Infinity for null. */
export function tierIndexInTable(
  maxes: Float64Array,
  start: number,
  count: number,
  notional: number,
): number {
  const last = count - 1;
  for (let i = 0; i < last; i++) {
    if (maxes[start + i]! >= notional) return i;
  }
  return last;
}
