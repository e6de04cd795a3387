/**
 * Derivative-free minimisation (Nelder-Mead simplex, standard coefficients) for the small maximum-likelihood
 * fits of the simulator (GARCH parameters). Deterministic: same start, same answer.
 */

export interface MinimiseResult {
  x: number[];
  value: number;
  iterations: number;
}

export function nelderMead(
  f: (x: readonly number[]) => number,
  start: readonly number[],
  { step = 0.5, maxIterations = 2000, tolerance = 1e-9 } = {},
): MinimiseResult {
  const n = start.length;
  const safe = (x: readonly number[]): number => {
    const v = f(x);
    return Number.isFinite(v) ? v : Number.POSITIVE_INFINITY;
  };
  let simplex: { x: number[]; v: number }[] = [{ x: [...start], v: safe(start) }];
  for (let i = 0; i < n; i++) {
    const x = [...start];
    x[i] = (x[i] ?? 0) + step;
    simplex.push({ x, v: safe(x) });
  }
  let it = 0;
  for (; it < maxIterations; it++) {
    simplex.sort((a, b) => a.v - b.v);
    const best = simplex[0]!;
    const worst = simplex[n]!;
    if (Math.abs(worst.v - best.v) <= tolerance * (Math.abs(best.v) + tolerance)) break;
    const centroid = new Array<number>(n).fill(0);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) centroid[j]! += simplex[i]!.x[j]! / n;
    const along = (t: number): number[] => centroid.map((c, j) => c + t * (worst.x[j]! - c));
    const reflected = along(-1);
    const rv = safe(reflected);
    if (rv < best.v) {
      const expanded = along(-2);
      const ev = safe(expanded);
      simplex[n] = ev < rv ? { x: expanded, v: ev } : { x: reflected, v: rv };
    } else if (rv < simplex[n - 1]!.v) {
      simplex[n] = { x: reflected, v: rv };
    } else {
      const contracted = rv < worst.v ? along(-0.5) : along(0.5);
      const cv = safe(contracted);
      if (cv < Math.min(rv, worst.v)) simplex[n] = { x: contracted, v: cv };
      else
        simplex = simplex
          .map((p, i) =>
            i === 0 ? p : { x: p.x.map((xj, j) => best.x[j]! + 0.5 * (xj - best.x[j]!)), v: Number.NaN },
          )
          .map((p) => (Number.isNaN(p.v) ? { x: p.x, v: safe(p.x) } : p));
    }
  }
  simplex.sort((a, b) => a.v - b.v);
  return { x: simplex[0]!.x, value: simplex[0]!.v, iterations: it };
}
