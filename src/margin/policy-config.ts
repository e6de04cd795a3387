/**
 * The action policy's configuration, each threshold with its documented default, and the per-account
 * memory the policy reads and returns (the core keeps no state and no clock of its own).
 */
import { MarginRuleError } from './errors.js';

export interface PolicyConfig {
  // --- LIQUIDATE (rules only, pd never matters) ---
  /** a partial liquidation stops once equity >= MM * (1 + buffer); default 0.1 (10% above MM) */
  liquidationBuffer: number;
  /** each liquidation step closes this fraction of a large position; default 0.2 (20% steps) */
  liquidationStepFraction: number;
  /** USD: a position at or below this notional is closed whole; default 10,000 */
  smallPositionNotional: number;

  // --- pd tiers (with hysteresis) ---
  /** pd at or above which an account is watched; default 0.01 */
  pdWatch: number;
  /** pd at or above which an early reduction is considered (combined with `reduceGateMarginRatio`); default 0.02 */
  pdReduce: number;
  /** a pd tier is left only when pd falls below its threshold minus this; default 0.003 */
  pdHysteresis: number;
  /**
   * pd at which the full target reduction applies; below it the reduction scales by pd / pdFull; default 0.02,
   * equal to pdReduce: an armed account gets the full target (the pd and the gate decide whom to reduce, the
   * kSigma target how much). At 0.2 an account armed at pd 0.02 was cut by a tenth of its target, and on the
   * backtest days most of the bad debt it left was "too small" reductions.
   */
  pdFull: number;
  /**
   * the pd reduce tier arms only while equity / MM is below this (the model's score combined with the
   * venue's margin ratio: a high pd far from maintenance margin stays a WATCH); once armed the tier is left
   * by pd alone (pdHysteresis), so a reduction that lifts the ratio does not disarm it; 0 = no gate;
   * default 5
   */
  reduceGateMarginRatio: number;
  /**
   * x (equity / MM): an armed reduce tier is not left while equity / MM is below this, whatever the pd, and
   * within `reduceTierHoldMs` of its last armed look it arms again below it; while only the ratio holds it (pd
   * under pdReduce - pdHysteresis) the reduction is sized as at pdFull. The model's pd falls once a crash's
   * volatility calms, and an account it selected could then lift its reduce-only and rebuild its leverage
   * between two falls; the margin-ratio rule stays armed for as long as its ratio is low
   * (docs/model-experiments.md). 0 = off (left by pd alone); default 0
   */
  reduceTierHoldRatio: number;
  /**
   * ms: with `reduceTierHoldRatio`, how long after its last armed look a disarmed account arms again when
   * equity / MM falls below that ratio, whatever its pd; 0: never (only a tier still armed is held); default 0
   */
  reduceTierHoldMs: number;

  // --- margin-ratio watch (rules only, with hysteresis) ---
  /** equity / MM below this puts the account on WATCH; default 1.5 */
  marginRatioWatch: number;
  /** ... and it leaves WATCH only above this; default 1.7 */
  marginRatioWatchExit: number;

  // --- REDUCE sizing ---
  /** the reduction targets surviving a k-sigma adverse move over the horizon; default 3 */
  kSigma: number;
  /** ms: horizon of that move; default 3,600,000 (1 h) */
  horizonMs: number;
  /** stdev of 1h returns used when the caller gives none for a symbol; default 0.01 (1%/h) */
  fallbackSigma1h: number;
  /** share of the account's notional (at the interval's start) that may be reduced per interval; default 0.5 */
  maxReduceFractionPerInterval: number;
  /** ms: length of that interval; default 300,000 (5 min) */
  reduceIntervalMs: number;
  /** a reduction order is at most this share of the visible depth on the side it hits; default 0.3 */
  depthShare: number;
  /** ms: minimum time between two REDUCE actions on one account; default 60,000 */
  cooldownMs: number;
  /** fee rate assumed when sizing a reduction (taker fee), fraction of notional; default 0.0005 */
  reduceFeeRate: number;
  /** USD: a reduction smaller than this is not worth an order (WATCH instead); default 10 */
  minReduceNotional: number;

  // --- venue controls ---
  /**
   * while the reduce tier is armed (pd >= pdReduce, left only below pdReduce - pdHysteresis), the account
   * may only reduce exposure: the venue refuses orders that would increase a position and cancels resting
   * ones that would (`Decision.reduceOnly`); default true
   */
  reduceOnlyWhileFlagged: boolean;
  /**
   * the restriction applies only while equity / MM is below this (an armed account whose ratio has recovered
   * may add exposure again, still reduced by the armed tier); 0: whenever the tier is armed; default 0
   */
  reduceOnlyMarginRatio: number;
  /**
   * ms: an account that goes flat while restricted is no longer scored, so its signal cannot clear: it stays
   * restricted this long after its last flagged decision (`reduceOnlyHeld`); 0 lifts the restriction as
   * soon as the account holds no position; default 3,600,000 (1 h)
   */
  reduceOnlyHoldMs: number;
  /**
   * x (account notional / equity): an account reduced early may not open exposure that takes its notional
   * above this multiple of its equity (`Decision.leverageCap`; the venue sizes such orders down to the cap
   * and cancels resting ones that would breach it), until `leverageCapHoldMs` after its last REDUCE. Early
   * reduction keeps in the market accounts that liquidation would have closed; without a cap they rebuild
   * their leverage and a later gap bankrupts them (docs/model-experiments.md). 0 = no cap; default 0
   */
  leverageCapAfterReduce: number;
  /**
   * ms: how long the leverage cap holds after the account's last REDUCE; default 259,200,000 (72 h, chosen with
   * a 10x cap on seen days over 24 h and 20x; docs/model-experiments.md)
   */
  leverageCapHoldMs: number;
  /**
   * the cap follows the REDUCE: an account may not open beyond the leverage (notional / equity, at the marks)
   * its last REDUCE left it at, which the reduction sized to survive a `kSigma` move at the hour's volatility
   * (with `leverageCapAfterReduce` > 0, the lower of the two); same hold; default false. Tried on seen days only
   * (docs/model-experiments.md)
   */
  leverageCapFollowsReduce: boolean;
}

export const DEFAULT_POLICY_CONFIG: Readonly<PolicyConfig> = Object.freeze({
  liquidationBuffer: 0.1,
  liquidationStepFraction: 0.2,
  smallPositionNotional: 10_000,
  pdWatch: 0.01,
  pdReduce: 0.02,
  pdHysteresis: 0.003,
  pdFull: 0.02,
  reduceGateMarginRatio: 5,
  reduceTierHoldRatio: 0,
  reduceTierHoldMs: 0,
  marginRatioWatch: 1.5,
  marginRatioWatchExit: 1.7,
  kSigma: 3,
  horizonMs: 3_600_000,
  fallbackSigma1h: 0.01,
  maxReduceFractionPerInterval: 0.5,
  reduceIntervalMs: 300_000,
  depthShare: 0.3,
  cooldownMs: 60_000,
  reduceFeeRate: 0.0005,
  minReduceNotional: 10,
  reduceOnlyWhileFlagged: true,
  reduceOnlyMarginRatio: 0,
  reduceOnlyHoldMs: 3_600_000,
  leverageCapAfterReduce: 0,
  leverageCapHoldMs: 259_200_000,
  leverageCapFollowsReduce: false,
});

export type PolicyAction = 'LIQUIDATE' | 'REDUCE' | 'WATCH' | 'HEALTHY';

/** Per-account memory: the caller stores what `decide` returns and passes it back next time. */
export interface PolicyMemory {
  /** the last action decided */
  action: PolicyAction;
  /** ms: when that action was first decided (unchanged while the action repeats) */
  since: number;
  /** armed pd tier: 0 none, 1 watch, 2 reduce (hysteresis state) */
  pdLevel: 0 | 1 | 2;
  /** armed margin-ratio watch (hysteresis state) */
  marginWatch: boolean;
  /** ms: time of the last REDUCE, null if none */
  lastReduceAt: number | null;
  /** ms: start of the current reduction interval, null if none */
  intervalStart: number | null;
  /** USD: account notional at the interval's start */
  intervalBaseNotional: number;
  /** USD: notional reduced so far within the interval */
  intervalReducedNotional: number;
  /** ms: the last decision with a pd in the armed reduce tier, null if none (see `reduceOnlyHeld`) */
  flaggedAt?: number | null;
  /** x: notional / equity the last REDUCE left the account at (see `leverageCapFollowsReduce`), null if none */
  reducedLeverage?: number | null;
}

export function initialMemory(now: number): PolicyMemory {
  return {
    action: 'HEALTHY',
    since: now,
    pdLevel: 0,
    marginWatch: false,
    lastReduceAt: null,
    intervalStart: null,
    intervalBaseNotional: 0,
    intervalReducedNotional: 0,
    flaggedAt: null,
    reducedLeverage: null,
  };
}

const BOOLEAN_FIELDS: ReadonlySet<keyof PolicyConfig> = new Set([
  'reduceOnlyWhileFlagged',
  'leverageCapFollowsReduce',
]);

/** Checks a (partial) config against the defaults; throws on a value out of range. */
export function resolvePolicyConfig(partial: Partial<PolicyConfig> = {}): PolicyConfig {
  if (typeof partial !== 'object' || partial === null || Array.isArray(partial))
    throw new MarginRuleError(
      'BAD_INPUT',
      `policy config must be an object of overrides (got ${JSON.stringify(partial)})`,
    );
  // a misspelt key would leave the default in force while its author believes it changed
  for (const k of Object.keys(partial))
    if (!Object.hasOwn(DEFAULT_POLICY_CONFIG, k))
      throw new MarginRuleError(
        'BAD_INPUT',
        `policy config has no field "${k}" (fields: ${Object.keys(DEFAULT_POLICY_CONFIG).join(', ')})`,
        k,
      );
  const c: PolicyConfig = { ...DEFAULT_POLICY_CONFIG, ...partial };
  const bad = (field: keyof PolicyConfig, rule: string): never => {
    throw new MarginRuleError(
      'BAD_INPUT',
      `policy config ${field} must be ${rule} (got ${String(c[field])})`,
      field,
    );
  };
  for (const [k, v] of Object.entries(c) as Array<[keyof PolicyConfig, unknown]>) {
    if (BOOLEAN_FIELDS.has(k)) {
      if (typeof v !== 'boolean') bad(k, 'true or false');
    } else if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) bad(k, 'a finite number >= 0');
  }
  if (!(c.liquidationStepFraction > 0 && c.liquidationStepFraction <= 1))
    bad('liquidationStepFraction', 'in (0, 1]');
  if (!(c.pdWatch <= c.pdReduce && c.pdReduce <= 1)) bad('pdReduce', '>= pdWatch and <= 1');
  if (!(c.pdFull > 0)) bad('pdFull', '> 0');
  if (c.pdReduce > 0 && !(c.pdHysteresis < c.pdReduce))
    bad('pdHysteresis', '< pdReduce (else an armed reduce tier is never left)');
  if (!(c.marginRatioWatchExit >= c.marginRatioWatch)) bad('marginRatioWatchExit', '>= marginRatioWatch');
  if (!(c.maxReduceFractionPerInterval <= 1)) bad('maxReduceFractionPerInterval', '<= 1');
  if (!(c.depthShare <= 1)) bad('depthShare', '<= 1');
  return c;
}
