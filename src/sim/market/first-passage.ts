/**
 * First exit of a precomputed price path from a band: "from minute m, when does the mark first leave
 * [lo, hi]?" in O(log n) with sparse tables of running minima and maxima. The venue uses it to know, for
 * an account whose equity - MM is safely positive, the first minute at which a mark move could possibly
 * have consumed that slack, and re-evaluates the account with the margin core only then (or as soon as
 * anything else touches it). Marks are exogenous, so the whole path is known in advance.
 */
export class PathRangeIndex {
  private readonly mins: Float64Array[];
  private readonly maxs: Float64Array[];

  constructor(private readonly path: Float64Array) {
    const n = path.length;
    this.mins = [Float64Array.from(path)];
    this.maxs = [Float64Array.from(path)];
    for (let k = 1; 1 << k <= n; k++) {
      const half = 1 << (k - 1);
      const pm = this.mins[k - 1]!;
      const px = this.maxs[k - 1]!;
      const len = n - (1 << k) + 1;
      const mn = new Float64Array(len);
      const mx = new Float64Array(len);
      for (let i = 0; i < len; i++) {
        mn[i] = Math.min(pm[i]!, pm[i + half]!);
        mx[i] = Math.max(px[i]!, px[i + half]!);
      }
      this.mins.push(mn);
      this.maxs.push(mx);
    }
  }

  /** The first minute t >= from with path[t] outside [lo, hi]; path.length when there is none. */
  firstExit(from: number, lo: number, hi: number): number {
    const n = this.path.length;
    let pos = Math.max(0, from);
    for (let k = this.mins.length - 1; k >= 0; k--) {
      const size = 1 << k;
      if (pos + size > n) continue;
      if (this.mins[k]![pos]! >= lo && this.maxs[k]![pos]! <= hi) pos += size;
    }
    return pos;
  }
}
