/**
 * Exponentially decayed windows: the bounded, O(1) "rolling window" every rate feature uses. A decayed sum
 * `S(T) = sum_i w_i * exp(-(T - t_i) / tau)` needs one number and the time of its last update; an event
 * `tau` ago weighs 1/e. For a steady rate `lambda`, observed since `T - obs`, the expected sum is
 * `lambda * tau * (1 - exp(-obs / tau))`, so dividing by that gives an unbiased rate that does not depend
 * on how long the history is (the early part of a history is not read as "quiet").
 */

/** exp(-dt / tau) for dt >= 0 (ms); 1 when dt <= 0. */
export function decayFactor(dtMs: number, tauMs: number): number {
  return dtMs > 0 ? Math.exp(-dtMs / tauMs) : 1;
}

/**
 * Multiplier turning a decayed sum (already brought to the snapshot time) into a rate per `unitMs` (e.g.
 * 3_600_000 for per hour). `observedMs` is how long the stream has been watched; it is floored at
 * `minObservedMs` so that a single event in the first seconds of a history is not read as a huge rate.
 */
export function rateScale(tauMs: number, observedMs: number, minObservedMs: number, unitMs: number): number {
  const obs = Math.max(observedMs, minObservedMs);
  return 1 / ((tauMs / unitMs) * (1 - Math.exp(-obs / tauMs)));
}
