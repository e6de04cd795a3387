/**
 * Writing one account's feature row: the margin core's account state, the market views of the instruments
 * it holds and its order-flow reading, mapped to the schema's columns with the documented clips and
 * neutral values. This is the only place feature values are produced, for training rows and live vectors
 * alike. Every value written is finite.
 */
import type { FlowReading } from './account-flow.js';
import type { MarginSweep } from './margin-sweep.js';
import type { MarketView } from './market-state.js';
import { F, FEATURE_COUNT, FEATURE_NEUTRAL, FEATURE_PARAMS as P } from './schema.js';

const LN_RATIO_MIN = Math.log(0.01);
const LN_RATIO_MAX = Math.log(1000);
const LEVERAGE_CAP = 200;
const DIST_PCT_CAP = 100;
const DIST_SIGMA_CAP = 50;
const SLIPPAGE_CAP_BPS = 1000;
/** bps of average slippage per unit of size / depth, for depth spread evenly over 1% of mid */
const SLIPPAGE_BPS_PER_DEPTH = 50;
const TOPUP_CAP_H = 24;
const LIQ_RECENCY_H = 24;

/** Clamp to [lo, hi]; NaN maps to lo (a last guard: inputs are finite). */
function clamp(v: number, lo: number, hi: number): number {
  return v > lo ? Math.min(v, hi) : lo;
}

/** Leverage as the features define it: gross notional / equity, capped; 0 without a position. */
export function leverageOf(notional: number, equity: number, hasPosition: boolean): number {
  if (!hasPosition) return 0;
  return equity > 0 ? Math.min(LEVERAGE_CAP, notional / equity) : LEVERAGE_CAP;
}

export interface RowContext {
  /** ms: the snapshot time */
  ts: number;
  /** 1 - exp(-observed / fast tau) */
  coverage: number;
  /** market view at `ts` by the pipeline's instrument index */
  views: readonly MarketView[];
}

/** Write row `r` of a margin sweep (one account) into `out` at `offset` (FEATURE_COUNT floats). */
export function writeRow(
  out: Float32Array,
  offset: number,
  sweep: MarginSweep,
  r: number,
  flow: FlowReading,
  ctx: RowContext,
): void {
  out.set(FEATURE_NEUTRAL, offset);
  const o = offset;
  const known = sweep.known[r] === 1;
  const equity = known ? sweep.out.equity[r]! : 0; // USD
  const eqFloor = Math.max(equity, P.equityFloorUsd); // USD

  // order flow (log1p(0) = 0 is skipped: most accounts have no withdrawals, liquidations...)
  const lnOrders = log1pPos(flow.ordersH);
  const lnCancels = log1pPos(flow.cancelsH);
  const lnFills = log1pPos(flow.fillsH);
  out[o + F.order_rate_log1p] = lnOrders;
  out[o + F.cancel_rate_log1p] = lnCancels;
  out[o + F.fill_rate_log1p] = lnFills;
  out[o + F.cancel_fill_log_ratio] = lnCancels - lnFills;
  out[o + F.taker_share] = flow.takerShare;
  out[o + F.fill_notional_log1p] = log1pPos(flow.fillUsdH);
  out[o + F.turnover_log1p] = log1pPos(flow.fillUsdH / eqFloor);
  out[o + F.double_down_log1p] = log1pPos(flow.doubleDownUsdH / eqFloor);
  out[o + F.cut_loss_log1p] = log1pPos(flow.cutLossUsdH / eqFloor);
  out[o + F.leverage_change_h] = clamp(flow.levChangeH, -100, 100);
  out[o + F.deposit_log1p_d] = log1pPos(flow.depositUsdD / eqFloor);
  out[o + F.withdrawal_log1p_d] = log1pPos(flow.withdrawalUsdD / eqFloor);
  if (Number.isNaN(flow.sinceDepositH)) out[o + F.topup_never] = 1;
  else out[o + F.since_topup_h] = Math.min(TOPUP_CAP_H, flow.sinceDepositH);
  const peak = Math.max(flow.peakEquity, equity);
  out[o + F.drawdown] = peak > 0 ? clamp(1 - equity / peak, 0, 1) : 0;
  out[o + F.liq_rate_log1p_d] = log1pPos(flow.liquidationsD);
  out[o + F.liq_recency] = Number.isNaN(flow.sinceLiqH) ? 0 : Math.exp(-flow.sinceLiqH / LIQ_RECENCY_H);
  out[o + F.flow_coverage] = ctx.coverage;
  out[o + F.fills_missing] = flow.fillsMissing ? 1 : 0;

  // margin
  out[o + F.equity_log] = equity >= 0 ? log1pPos(equity) : -Math.log1p(-equity);
  if (equity <= 0 && known) out[o + F.equity_nonpositive] = 1;
  const from = sweep.posStart[r]!;
  const n = sweep.posStart[r + 1]! - from;
  if (n === 0) {
    out[o + F.free_collateral_share] = equity > 0 ? 1 : 0;
    return;
  }
  const mr = sweep.out.marginRatio[r]!;
  const notional = sweep.notional[r]!;
  const freeCollateral = equity - sweep.out.im[r]!;
  out[o + F.has_position] = 1;
  out[o + F.position_count] = Math.min(20, n);
  out[o + F.margin_ratio_log] = clamp(Math.log(Math.max(mr, 1e-300)), LN_RATIO_MIN, LN_RATIO_MAX);
  out[o + F.leverage] = leverageOf(notional, equity, true);
  out[o + F.free_collateral_share] = equity > 0 ? clamp(freeCollateral / equity, -1, 1) : -1;
  out[o + F.upnl_notional] = notional > 0 ? clamp(sweep.out.upnl[r]! / notional, -1, 1) : 0;
  writePositionFeatures(out, o, sweep, r, ctx);
}

function log1pPos(x: number): number {
  return x > 0 ? Math.log1p(x) : 0;
}

/** Per-position distances, slippage and the notional-weighted market features. */
function writePositionFeatures(
  out: Float32Array,
  o: number,
  sweep: MarginSweep,
  r: number,
  ctx: RowContext,
): void {
  const from = sweep.posStart[r]!;
  const to = sweep.posStart[r + 1]!;
  const equity = sweep.out.equity[r]!;
  const mm = sweep.out.mm[r]!;
  const accountNotional = sweep.notional[r]!;
  const below = equity < mm; // already liquidatable: every distance is 0
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
  let volume = 0;
  let surge = 0;
  let spread = 0;
  let depth = 0;
  let funding = 0;
  let markAge = 0;
  let volMissing = 0;
  let volSlowMissing = 0;
  let indMissing = 0;
  let tradesMissing = 0;
  let bookMissing = 0;
  const equalWeights = !(accountNotional > 0);
  for (let k = from; k < to; k++) {
    const v = ctx.views[sweep.posInst[k]!]!;
    const qty = sweep.posQty[k]!;
    const posNotional = sweep.posNotional[k]!;
    const markPrice = sweep.posMark[k]!;
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
      const halfSpread = v.spreadBps / 2;
      const bps =
        sideDepth > 0
          ? Math.min(SLIPPAGE_CAP_BPS, halfSpread + (SLIPPAGE_BPS_PER_DEPTH * Math.abs(qty)) / sideDepth)
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
    volume += wt * v.volumeUsdH;
    surge += wt * v.volumeSurge;
    spread += wt * v.spreadBps;
    depth += wt * v.depthUsd;
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
  out[o + F.volume_log1p] = log1pPos(volume / w);
  out[o + F.volume_surge] = surge / w;
  out[o + F.spread_bps] = spread / w;
  out[o + F.depth_log1p] = log1pPos(depth / w);
  out[o + F.funding_pay] = funding / w;
  out[o + F.mark_age_min] = markAge;
  out[o + F.vol_missing] = volMissing;
  out[o + F.vol_slow_missing] = volSlowMissing;
  out[o + F.indicators_missing] = indMissing;
  out[o + F.trades_missing] = tradesMissing;
  out[o + F.book_missing] = bookMissing;
}

/** Row width, re-exported for callers that size buffers. */
export const ROW_WIDTH = FEATURE_COUNT;
