/**
 * Dynamic margin: an optional add-on that raises the initial margin rate with realised volatility, so
 * that the initial margin covers the maintenance margin plus a z-sigma move over the close-out horizon:
 *
 *   imrEffective = min(1, max(imr, mmr + z * sigma1h * sqrt(horizonHours)))
 *
 * `sigma1h` is the standard deviation of one-hour returns (a fraction, e.g. 0.01 = 1%) supplied by the
 * caller per symbol. Off by default, so the venue's thresholds stay exact; it never touches MM (the
 * liquidation threshold), only IM and so free collateral.
 */

export interface DynamicMarginConfig {
  /** default false: the venue's standard tiers only */
  enabled: boolean;
  /** default 2.33 (one-sided 99% normal quantile) */
  z: number;
  /** hours: default 1, the time assumed to close out a position */
  horizonHours: number;
}

export const DEFAULT_DYNAMIC_MARGIN: Readonly<DynamicMarginConfig> = Object.freeze({
  enabled: false,
  z: 2.33,
  horizonHours: 1,
});

/**
 * The volatility term `z * sigma1h * sqrt(horizonHours)` for one symbol, or NaN when the add-on is off or
 * the volatility is unknown / not finite (then the tier's imr applies unchanged).
 */
export function dynamicTerm(config: DynamicMarginConfig, sigma1h: number | undefined): number {
  if (!config.enabled || sigma1h === undefined || !Number.isFinite(sigma1h) || sigma1h < 0) return Number.NaN;
  return config.z * sigma1h * Math.sqrt(config.horizonHours);
}

/** The initial margin rate to apply: the tier's, or the dynamic one when `term` is a number. */
export function effectiveImr(imr: number, mmr: number, term: number): number {
  if (!(term >= 0)) return imr; // NaN: add-on off
  return Math.min(1, Math.max(imr, mmr + term));
}
