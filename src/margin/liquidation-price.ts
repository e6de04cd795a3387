/**
 * Liquidation and bankruptcy prices of one position with the account's other marks held.
 *
 * With `E0` the account equity and `MMo` the maintenance margin of its other positions, the account is
 * at its threshold at mark x when `E0 + (x - m) q c = MMo + |q| c x mmr(tier(|q| c x))`. Within tier t
 * this is linear, so each tier gives one candidate root, kept when its notional falls in the tier.
 * Between tiers the requirement jumps up with the notional: for a short that can make the crossing fall
 * exactly on a tier boundary, which is then the liquidation price.
 */
import type { Tier } from '../events/schema.js';
import { tierIndexOf, tierMax } from './tiers.js';

/** Relative tolerance for a root landing on a tier boundary (float rounding of the notional). */
const BOUND_TOL = 1e-12;

export interface PriceInputs {
  /** contracts, signed */
  qty: number;
  /** USD: current mark of this position */
  mark: number;
  contractSize: number;
  tiers: readonly Tier[];
  /** USD: account equity at the current marks */
  equity: number;
  /** USD: maintenance margin of the account's other positions */
  otherMm: number;
}

function slack(p: PriceInputs, x: number, mmr: number): number {
  const equityAtX = p.equity + (x - p.mark) * p.qty * p.contractSize;
  return equityAtX - p.otherMm - Math.abs(p.qty) * p.contractSize * x * mmr;
}

/**
 * The mark at which `equity = MM` (the tier applying at that mark): for a healthy position the nearest
 * such price in the adverse direction (below the mark for a long, above for a short); for an account
 * already below MM, the price it would have to recover to. null when no positive price qualifies
 * (e.g. a long so well collateralised that even a mark of 0 keeps equity above MM).
 */
export function liquidationPrice(p: PriceInputs): number | null {
  const { qty, contractSize: c, tiers } = p;
  if (qty === 0) return null;
  const absQc = Math.abs(qty) * c;
  const base = p.otherMm - p.equity + p.mark * qty * c;
  const roots: number[] = [];
  let lo = 0;
  for (let t = 0; t < tiers.length; t++) {
    const tier = tiers[t]!;
    const hi = t === tiers.length - 1 ? Number.POSITIVE_INFINITY : tierMax(tier);
    const x = base / (c * (qty - Math.abs(qty) * tier.mmr));
    const n = absQc * x;
    if (x > 0 && Number.isFinite(x) && n > lo * (1 - BOUND_TOL) && n <= hi * (1 + BOUND_TOL)) roots.push(x);
    lo = hi;
  }
  const currentTier = tierIndexOf(tiers, absQc * p.mark);
  const healthy = slack(p, p.mark, tiers[currentTier]!.mmr) >= 0;
  if (qty > 0) {
    let best: number | null = null;
    for (const x of roots) {
      if (healthy ? x <= p.mark && (best === null || x > best) : x > p.mark && (best === null || x < best))
        best = x;
    }
    return best;
  }
  // short: the threshold slack strictly falls as the mark rises, so the crossing is unique
  if (roots.length > 0) return nearest(roots, p.mark);
  for (let t = 0; t < tiers.length - 1; t++) {
    const b = tierMax(tiers[t]!) / absQc;
    const tol = BOUND_TOL * Math.max(1, Math.abs(p.equity), absQc * b);
    if (slack(p, b, tiers[t]!.mmr) >= -tol && slack(p, b, tiers[t + 1]!.mmr) < 0) return b;
  }
  return null;
}

/** The mark at which the account's equity is 0, other marks held; null when that is not a price > 0. */
export function bankruptcyPrice(
  p: Pick<PriceInputs, 'qty' | 'mark' | 'contractSize' | 'equity'>,
): number | null {
  if (p.qty === 0) return null;
  const x = p.mark - p.equity / (p.qty * p.contractSize);
  return x > 0 && Number.isFinite(x) ? x : null;
}

function nearest(xs: number[], to: number): number {
  let best = xs[0]!;
  for (const x of xs) if (Math.abs(x - to) < Math.abs(best - to)) best = x;
  return best;
}
