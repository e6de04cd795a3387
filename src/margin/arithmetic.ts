/**
 * The per-position margin arithmetic of the spec, as tiny functions that both the object path
 * (`evaluateAccount`) and the typed-array batch path (`evaluateBatch`) call in the same order, so the
 * two agree bit for bit.
 */

/** USD: `(mark - avgEntry) * qty * contractSize` */
export function upnlOf(qty: number, avgEntry: number, contractSize: number, mark: number): number {
  return (mark - avgEntry) * qty * contractSize;
}

/** USD: `|qty| * contractSize * mark` */
export function notionalOf(qty: number, contractSize: number, mark: number): number {
  return Math.abs(qty) * contractSize * mark;
}

/** equity / MM; +Infinity with no requirement (no position). */
export function marginRatioOf(equity: number, mm: number): number {
  return mm > 0 ? equity / mm : Number.POSITIVE_INFINITY;
}
