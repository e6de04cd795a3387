/**
 * Minute marks inside an OHLC bar: a Brownian bridge in log price from the open through the bar's high and
 * low (each touched exactly, at a minute mark) to the close, reflected into [low, high] so that it never
 * leaves the bar's range. Hourly bars hide their wicks; this puts them back at realistic times.
 *
 * Assumptions (documented in scenarios/README.md): the extremes sit at uniformly drawn minutes (at the open
 * when the open is the extreme, at the last minute when the close is); in a down bar the high precedes the
 * low with probability 2/3 (an up bar: the low first), the Brownian scale is the Parkinson estimate of the
 * bar's volatility, and the caller passes the standard normals so that instruments can share correlated
 * noise.
 */
import type { Rng } from '../random.js';

const PARKINSON = 2 * Math.sqrt(Math.log(2));

function reflect(x: number, lo: number, hi: number): number {
  const w = hi - lo;
  if (!(w > 0)) return lo;
  // fold into [lo, hi] with period 2w
  let y = (x - lo) % (2 * w);
  if (y < 0) y += 2 * w;
  return lo + (y <= w ? y : 2 * w - y);
}

export interface BarExtremeTimes {
  /** minute offset of the high within the bar */
  high: number;
  /** minute offset of the low */
  low: number;
}

/** Draw the minute offsets (in [0, n-1]) at which a bar reaches its high and low. */
export function drawExtremeTimes(
  open: number,
  high: number,
  low: number,
  close: number,
  n: number,
  rng: Rng,
  hint?: BarExtremeTimes,
): BarExtremeTimes {
  if (n <= 1) return { high: 0, low: 0 };
  const interior = (): number => 1 + rng.int(Math.max(1, n - 1));
  const near = (t: number | undefined): number =>
    t === undefined ? interior() : Math.min(n - 1, Math.max(1, Math.round(t + 2 * rng.normal())));
  let th = open >= high ? 0 : close >= high ? n - 1 : near(hint?.high);
  let tl = open <= low ? 0 : close <= low ? n - 1 : near(hint?.low);
  if (th === tl && n > 2) {
    if (th === 0 || th === n - 1) tl = th === 0 ? interior() : Math.max(1, n - 2);
    else tl = th === n - 1 ? th - 1 : th + 1;
  }
  // order: a falling bar usually makes its high first, a rising bar its low first
  const interiorBoth = th > 0 && th < n - 1 && tl > 0 && tl < n - 1;
  if (interiorBoth) {
    const highFirst = close < open ? rng.bernoulli(2 / 3) : rng.bernoulli(1 / 3);
    if (highFirst !== th < tl) [th, tl] = [tl, th];
  }
  return { high: th, low: tl };
}

/**
 * Fill `out[offset .. offset+n-1]` with the bar's minute marks (prices). `noise[offset + k]` are standard
 * normals for minute k. The mark at offset 0 is the open; the close is the value the bridge aims for at
 * minute n (the next bar's open).
 */
export function bridgeBar(
  bar: { open: number; high: number; low: number; close: number },
  n: number,
  times: BarExtremeTimes,
  noise: ArrayLike<number>,
  out: Float64Array,
  offset: number,
): void {
  const o = Math.log(bar.open);
  const h = Math.log(bar.high);
  const l = Math.log(bar.low);
  const c = Math.log(bar.close);
  const sigma = (h - l) / PARKINSON / Math.sqrt(n);
  const anchors: [number, number][] = [
    [0, o],
    [times.high, h],
    [times.low, l],
    [n, c],
  ];
  anchors.sort((a, b) => a[0] - b[0]);
  for (let s = 0; s < anchors.length - 1; s++) {
    const [t0, x0] = anchors[s]!;
    const [t1, x1] = anchors[s + 1]!;
    const len = t1 - t0;
    if (len <= 0) continue;
    // random walk over the segment, then pinned at both ends
    let w = 0;
    const walk = new Float64Array(len + 1);
    for (let k = 1; k <= len; k++) {
      w += sigma * (noise[offset + t0 + k - 1] ?? 0);
      walk[k] = w;
    }
    const wEnd = walk[len]!;
    for (let k = 0; k < len; k++) {
      const t = t0 + k;
      if (t >= n) break;
      const f = k / len;
      const x = x0 + f * (x1 - x0) + walk[k]! - f * wEnd;
      out[offset + t] = Math.exp(reflect(x, l, h));
    }
  }
  // the extremes are touched exactly
  out[offset + times.high] = bar.high;
  out[offset + times.low] = bar.low;
  if (times.high !== 0 && times.low !== 0) out[offset] = bar.open;
}
