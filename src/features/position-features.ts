/**
 * The per-position part of a feature row: distance to liquidation (percent and horizon sigmas), the
 * cushion in sigmas, the expected liquidation slippage, concentration, and the market features of the
 * instruments held, averaged with notional weights and signed by each position's direction.
 *
 * Per snapshot, each instrument's market view is turned once into a `MarketBlock`: the raw values to
 * average, and the finished columns for a single long or short position (the common case, copied as is).
 */
import type { MarginSweep } from './margin-sweep.js';
import type { MarketView } from './market-state.js';
import { F } from './schema.js';

const DIST_PCT_CAP = 100;
const DIST_SIGMA_CAP = 50;
const SLIPPAGE_CAP_BPS = 1000;
/** bps of average slippage per unit of size / depth, for depth spread evenly over 1% of mid */
const SLIPPAGE_BPS_PER_DEPTH = 50;

function clamp(v: number, lo: number, hi: number): number {
  return v > lo ? Math.min(v, hi) : lo;
}

/** Write the position and market columns of sweep row `r` (which has at least one position). */
export function writePositionFeatures(
  out: Float32Array,
  o: number,
  sweep: MarginSweep,
  r: number,
  views: readonly MarketView[],
): void {
  const from = sweep.posStart[r]!;
  const to = sweep.posStart[r + 1]!;
  const equity = sweep.out.equity[r]!; // USD
  const mm = sweep.out.mm[r]!; // USD
  const accountNotional = sweep.notional[r]!; // USD
  const below = equity < mm; // already liquidatable: every distance is 0
  const equalWeights = !(accountNotional > 0);
  let distPct = DIST_PCT_CAP;
  let distSigma = DIST_SIGMA_CAP;
  let sigmaNotional = 0; // USD
  let maxNotional = 0; // USD
  let slip = 0; // bps * USD
  let wSlip = 0; // USD: weight of the positions with a book
  let w = 0; // weight normaliser, USD
  let volFast = 0;
  let volSlow = 0;
  let sigmaH = 0;
  let volRatio = 0;
  let atr = 0;
  let bb = 0;
  let rsi = 0;
  let ret = 0;
  let imb = 0;
  let surge = 0;
  let spread = 0;
  let funding = 0;
  let markAge = 0;
  let volMissing = 0;
  let volSlowMissing = 0;
  let indMissing = 0;
  let tradesMissing = 0;
  let bookMissing = 0;
  for (let k = from; k < to; k++) {
    const v = views[sweep.posInst[k]!]!;
    const qty = sweep.posQty[k]!; // contracts
    const posNotional = sweep.posNotional[k]!; // USD
    const markPrice = sweep.posMark[k]!; // USD
    const sign = qty > 0 ? 1 : -1;
    const wt = equalWeights ? 1 : posNotional;
    w += wt;
    if (posNotional > maxNotional) maxNotional = posNotional;
    sigmaNotional += posNotional * v.sigmaH;
    const lp = sweep.posLiq[k]!;
    if (below) {
      distPct = 0;
      distSigma = 0;
    } else if (lp > 0 && markPrice > 0) {
      distPct = Math.min(distPct, (100 * Math.abs(markPrice - lp)) / markPrice);
      distSigma = Math.min(distSigma, Math.abs(Math.log(lp / markPrice)) / v.sigmaH);
    }
    if (v.bookMissing) bookMissing = 1;
    else {
      const sideDepth = sign > 0 ? v.bidDepth : v.askDepth; // closing a long sells into the bids
      const bps =
        sideDepth > 0
          ? Math.min(SLIPPAGE_CAP_BPS, v.spreadBps / 2 + (SLIPPAGE_BPS_PER_DEPTH * Math.abs(qty)) / sideDepth)
          : SLIPPAGE_CAP_BPS;
      slip += wt * bps;
      wSlip += wt;
    }
    volFast += wt * v.volFastAnn;
    volSlow += wt * v.volSlowAnn;
    sigmaH += wt * v.sigmaH;
    volRatio += wt * v.volRatio;
    atr += wt * v.atrPct;
    bb += wt * v.bbBandwidth;
    rsi += wt * sign * v.rsiCentered;
    ret += wt * sign * v.ret1h;
    imb += wt * sign * v.imbalance;
    surge += wt * v.volumeSurge;
    spread += wt * v.spreadBps;
    funding += wt * sign * v.fundingRate;
    if (v.markAgeMin > markAge) markAge = v.markAgeMin;
    if (v.volMissing) volMissing = 1;
    if (v.volSlowMissing) volSlowMissing = 1;
    if (v.indicatorsMissing) indMissing = 1;
    if (v.tradesMissing) tradesMissing = 1;
  }
  out[o + F.concentration] = accountNotional > 0 ? maxNotional / accountNotional : 1;
  out[o + F.liq_dist_pct] = clamp(distPct, 0, DIST_PCT_CAP);
  out[o + F.liq_dist_sigma] = clamp(distSigma, 0, DIST_SIGMA_CAP);
  out[o + F.buffer_sigma] =
    sigmaNotional > 0
      ? clamp((equity - mm) / sigmaNotional, -DIST_SIGMA_CAP, DIST_SIGMA_CAP)
      : DIST_SIGMA_CAP;
  out[o + F.liq_slippage_bps] = wSlip > 0 ? clamp(slip / wSlip, 0, SLIPPAGE_CAP_BPS) : 0;
  out[o + F.vol_fast_ann] = volFast / w;
  out[o + F.vol_slow_ann] = volSlow / w;
  out[o + F.sigma_h] = sigmaH / w;
  out[o + F.vol_ratio] = volRatio / w;
  out[o + F.atr_pct] = atr / w;
  out[o + F.bb_bandwidth] = bb / w;
  out[o + F.rsi_signed] = rsi / w;
  out[o + F.ret_1h_signed] = ret / w;
  out[o + F.trade_imbalance_signed] = imb / w;
  out[o + F.volume_surge] = surge / w;
  out[o + F.spread_bps] = spread / w;
  out[o + F.funding_pay] = funding / w;
  out[o + F.mark_age_min] = markAge;
  out[o + F.vol_missing] = volMissing;
  out[o + F.vol_slow_missing] = volSlowMissing;
  out[o + F.indicators_missing] = indMissing;
  out[o + F.trades_missing] = tradesMissing;
  out[o + F.book_missing] = bookMissing;
}
