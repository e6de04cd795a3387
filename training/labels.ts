/**
 * Labels from history: a snapshot row (account, ts) is a default (1) when the account is liquidated (a
 * `liquidation` event) within (ts, ts + horizon]. Rows of accounts already being liquidated at the snapshot
 * (equity < MM there) are excluded by the dataset builder. Also: lead time from the first alert of an
 * uninterrupted alert run to the liquidation it preceded.
 */

/** Sorted liquidation times (ms) per account index. */
export type LiquidationTimes = Map<number, number[]>;

function firstAfter(sorted: number[], t: number): number | undefined {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((sorted[mid] as number) <= t) lo = mid + 1;
    else hi = mid;
  }
  return sorted[lo];
}

export function labelRows(
  ts: Float64Array,
  account: Uint32Array,
  liquidations: LiquidationTimes,
  horizonMs: number,
): Float32Array {
  const y = new Float32Array(ts.length);
  for (let i = 0; i < ts.length; i++) {
    const times = liquidations.get(account[i] as number);
    if (!times) continue;
    const next = firstAfter(times, ts[i] as number);
    if (next !== undefined && next <= (ts[i] as number) + horizonMs) y[i] = 1;
  }
  return y;
}

/**
 * For each liquidation preceded by a snapshot at most `everyMs` before it, the minutes from the first
 * alert (pd >= threshold) of the uninterrupted run of alerted snapshots that reaches that last snapshot.
 * Liquidations whose last snapshot was not alerted count as missed (not in the list).
 */
export function leadTimesMin(
  ts: Float64Array,
  account: Uint32Array,
  pd: ArrayLike<number>,
  threshold: number,
  liquidations: LiquidationTimes,
  everyMs: number,
): { leads: number[]; missed: number } {
  const rowsByAccount = new Map<number, number[]>();
  for (let i = 0; i < ts.length; i++) {
    const a = account[i] as number;
    const list = rowsByAccount.get(a);
    if (list) list.push(i);
    else rowsByAccount.set(a, [i]);
  }
  const leads: number[] = [];
  let missed = 0;
  for (const [a, times] of liquidations) {
    const rows = rowsByAccount.get(a);
    if (!rows) continue;
    for (const t of times) {
      // last snapshot strictly before the liquidation
      let k = -1;
      for (let j = rows.length - 1; j >= 0; j--) {
        if ((ts[rows[j] as number] as number) < t) {
          k = j;
          break;
        }
      }
      if (k < 0 || t - (ts[rows[k] as number] as number) > everyMs) continue;
      if ((pd[rows[k] as number] as number) < threshold) {
        missed++;
        continue;
      }
      let first = k;
      while (first > 0) {
        const prev = rows[first - 1] as number;
        const cur = rows[first] as number;
        if ((pd[prev] as number) < threshold || (ts[cur] as number) - (ts[prev] as number) > everyMs) break;
        first--;
      }
      leads.push((t - (ts[rows[first] as number] as number)) / 60_000);
    }
  }
  return { leads, missed };
}
