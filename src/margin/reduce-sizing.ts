/**
 * Sizing an early exposure reduction. The target is the smallest uniform reduction fraction f after
 * which an adverse move of k sigma over the horizon on every position would still leave equity >= MM:
 *
 *   equity - fee * f * N - (1 - f) * sum(|q| c m min(1, k sigma_h))  >=  MM(at shocked marks, q (1 - f))
 *
 * (sigma_h = sigma1h * sqrt(horizon / 1h); MM re-tiered exactly; found by bisection, the left side rising
 * and the right side falling in f). The target is then scaled by min(1, pd / pdFull), capped by the
 * interval's remaining room (USD notional) and, per symbol, by a share of the visible depth on the side
 * the order hits. Finally it is shrunk, if need be, so that the fill at the mark (fees included) leaves
 * equity >= MM: a reduction never pushes an account below MM and never increases any position.
 */
import { notionalOf } from './arithmetic.js';
import type { PolicyConfig } from './policy-config.js';
import type { DepthView } from './policy-types.js';
import { closedNotional, type Holding, mmAt } from './what-if.js';

const HOUR_MS = 3_600_000;

export interface ReductionSizing {
  qtys: number[]; // contracts, signed, after the reduction
  /** fraction of exposure the k-sigma target asks for (before pd scaling and caps) */
  targetFraction: number;
  /** min(1, pd / pdFull) */
  pdScale: number;
  /** USD notional reduced (at the marks) */
  reducedNotional: number;
  /** which caps bound the size */
  cappedBy: string[];
  /** symbols reduced without a depth cap (no depth known) */
  noDepth: string[];
  equityAfter: number; // USD at the marks, after the estimated fee
  mmAfter: number; // USD
  /** USD: stressed slack (equity - MM after the k-sigma shock) before any reduction */
  stressedSlack: number;
}

export interface ReductionInputs {
  equity: number; // USD
  holdings: readonly Holding[];
  pd: number;
  sigma1h: Readonly<Record<string, number>>;
  depth: Readonly<Record<string, DepthView>>;
  /** USD: notional still allowed this interval */
  intervalRoom: number;
  config: PolicyConfig;
}

export function sizeReduction(inp: ReductionInputs): ReductionSizing {
  const { holdings, config: cfg } = inp;
  const horizonScale = Math.sqrt(cfg.horizonMs / HOUR_MS);
  const shocks = holdings.map((h) => {
    const s = inp.sigma1h[h.symbol];
    const sigma = s !== undefined && Number.isFinite(s) && s >= 0 ? s : cfg.fallbackSigma1h;
    return Math.min(1, cfg.kSigma * sigma * horizonScale);
  });
  const shocked = holdings.map((h, i) => h.mark * (1 - Math.sign(h.qty) * shocks[i]!));
  const totalNotional = holdings.reduce((a, h) => a + notionalOf(h.qty, h.contractSize, h.mark), 0);
  const stressLoss = holdings.reduce(
    (a, h, i) => a + notionalOf(h.qty, h.contractSize, h.mark) * shocks[i]!,
    0,
  );
  const slackAt = (f: number): number => {
    const qtys = holdings.map((h) => h.qty * (1 - f));
    const eq = inp.equity - cfg.reduceFeeRate * f * totalNotional - (1 - f) * stressLoss;
    return eq - mmAt(holdings, qtys, shocked);
  };
  const stressedSlack = slackAt(0);
  let target = 0;
  if (stressedSlack < 0) {
    let lo = 0;
    let hi = 1;
    if (slackAt(1) < 0) lo = 1;
    else
      for (let it = 0; it < 60; it++) {
        const mid = (lo + hi) / 2;
        if (slackAt(mid) >= 0) hi = mid;
        else lo = mid;
      }
    target = lo === 1 ? 1 : hi;
  }
  const pdScale = Math.min(1, inp.pd / cfg.pdFull);
  const cappedBy: string[] = [];
  let f = target * pdScale;
  if (f * totalNotional > inp.intervalRoom) {
    f = totalNotional > 0 ? Math.max(0, inp.intervalRoom / totalNotional) : 0;
    cappedBy.push('interval');
  }
  const noDepth: string[] = [];
  let deltas = holdings.map((h, i) => {
    let d = Math.abs(h.qty) * f;
    const depth = inp.depth[h.symbol];
    if (!depth) {
      if (d > 0) noDepth.push(h.symbol);
      return d;
    }
    const visible = h.qty > 0 ? depth.bidDepth : depth.askDepth;
    const cap = cfg.depthShare * visible;
    if (d > cap) {
      d = cap;
      cappedBy.push(`depth:${holdings[i]!.symbol}`);
    }
    return d;
  });
  let qtys = holdings.map((h, i) => h.qty - Math.sign(h.qty) * deltas[i]!);
  const after = (q: number[]) => inp.equity - cfg.reduceFeeRate * closedNotional(holdings, q);
  let shrinks = 0;
  while (after(qtys) < mmAt(holdings, qtys) && shrinks < 40) {
    deltas = deltas.map((d) => d / 2);
    qtys = holdings.map((h, i) => h.qty - Math.sign(h.qty) * deltas[i]!);
    shrinks++;
  }
  if (after(qtys) < mmAt(holdings, qtys)) qtys = holdings.map((h) => h.qty);
  if (shrinks > 0) cappedBy.push('stay-above-mm');
  return {
    qtys,
    targetFraction: target,
    pdScale,
    reducedNotional: closedNotional(holdings, qtys),
    cappedBy,
    noDepth,
    equityAfter: after(qtys),
    mmAfter: mmAt(holdings, qtys),
    stressedSlack,
  };
}
