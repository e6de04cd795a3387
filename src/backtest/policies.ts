/**
 * The policies a backtest compares on the same seed and traders. Every early-reducing policy runs the same
 * margin-core `decide` (same sizing, caps, hysteresis and cooldown); they differ only in the signal fed to it:
 *  - `liquidation-only`: no risk engine; the venue's standard rules alone.
 *  - `predictive`: preempt: the model's calibrated pd from the live feature pipeline.
 *  - `margin-ratio`: a non-ML early warning: pd := 1 when equity / MM < threshold (default 1.5), else 0.
 * So the model's contribution is isolated from the mere act of reducing early.
 */
export const POLICY_NAMES = ['liquidation-only', 'predictive', 'margin-ratio'] as const;
export type PolicyName = (typeof POLICY_NAMES)[number];

export class BacktestInputError extends Error {
  readonly code = 'BACKTEST_INPUT';
}

export function parsePolicies(names: readonly string[]): PolicyName[] {
  const out: PolicyName[] = [];
  for (const n of names) {
    if (!(POLICY_NAMES as readonly string[]).includes(n))
      throw new BacktestInputError(`unknown policy "${n}" (policies: ${POLICY_NAMES.join(', ')})`);
    if (!out.includes(n as PolicyName)) out.push(n as PolicyName);
  }
  // liquidation-only is the reference every comparison needs
  if (!out.includes('liquidation-only')) out.unshift('liquidation-only');
  return out;
}
