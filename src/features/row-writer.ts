/**
 * Writing one account's feature row: the margin core's account state, the market views of the instruments
 * it holds and its order-flow reading, mapped to the schema's columns with the documented clips and
 * neutral values. This is the only place feature values are produced, for training rows and live vectors
 * alike. Every value written is finite.
 */
import type { AccountMargin } from '../margin/index.js';
import type { FlowReading } from './account-flow.js';
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
  /** market view of a symbol at `ts` (always defined for a declared symbol) */
  market: (symbol: string) => MarketView;
}

/** Write the row of one account into `out` at `offset` (FEATURE_COUNT floats). */
export function writeRow(
  out: Float32Array,
  offset: number,
  margin: AccountMargin | undefined,
  flow: FlowReading,
  ctx: RowContext,
): void {
  out.set(FEATURE_NEUTRAL, offset);
  const o = offset;
  const equity = margin ? margin.equity : 0; // USD
  const eqFloor = Math.max(equity, P.equityFloorUsd); // USD

  // order flow
  out[o + F.order_rate_log1p] = Math.log1p(flow.ordersH);
  out[o + F.cancel_rate_log1p] = Math.log1p(flow.cancelsH);
  out[o + F.fill_rate_log1p] = Math.log1p(flow.fillsH);
  out[o + F.cancel_fill_log_ratio] = Math.log((1 + flow.cancelsH) / (1 + flow.fillsH));
  out[o + F.taker_share] = flow.takerShare;
  out[o + F.fill_notional_log1p] = Math.log1p(flow.fillUsdH);
  out[o + F.turnover_log1p] = Math.log1p(flow.fillUsdH / eqFloor);
  out[o + F.double_down_log1p] = Math.log1p(flow.doubleDownUsdH / eqFloor);
  out[o + F.cut_loss_log1p] = Math.log1p(flow.cutLossUsdH / eqFloor);
  out[o + F.leverage_change_h] = clamp(flow.levChangeH, -100, 100);
  out[o + F.deposit_log1p_d] = Math.log1p(flow.depositUsdD / eqFloor);
  out[o + F.withdrawal_log1p_d] = Math.log1p(flow.withdrawalUsdD / eqFloor);
  if (Number.isNaN(flow.sinceDepositH)) out[o + F.topup_never] = 1;
  else out[o + F.since_topup_h] = Math.min(TOPUP_CAP_H, flow.sinceDepositH);
  const peak = Math.max(flow.peakEquity, equity);
  out[o + F.drawdown] = peak > 0 ? clamp(1 - equity / peak, 0, 1) : 0;
  out[o + F.liq_rate_log1p_d] = Math.log1p(flow.liquidationsD);
  out[o + F.liq_recency] = Number.isNaN(flow.sinceLiqH) ? 0 : Math.exp(-flow.sinceLiqH / LIQ_RECENCY_H);
  out[o + F.flow_coverage] = ctx.coverage;
  out[o + F.fills_missing] = flow.fillsMissing ? 1 : 0;

  // margin
  out[o + F.equity_log] = Math.sign(equity) * Math.log1p(Math.abs(equity));
  if (equity <= 0 && margin) out[o + F.equity_nonpositive] = 1;
  const positions = margin ? margin.positions : [];
  const n = positions.length;
  if (n === 0) {
    out[o + F.free_collateral_share] = equity > 0 ? 1 : 0;
    return;
  }
  out[o + F.has_position] = 1;
  out[o + F.position_count] = Math.min(20, n);
  const m = margin!;
  out[o + F.margin_ratio_log] = clamp(Math.log(Math.max(m.marginRatio, 1e-300)), LN_RATIO_MIN, LN_RATIO_MAX);
  out[o + F.leverage] = leverageOf(m.notional, equity, true);
  out[o + F.free_collateral_share] = equity > 0 ? clamp(m.freeCollateral / equity, -1, 1) : -1;
  out[o + F.upnl_notional] = m.notional > 0 ? clamp(m.upnl / m.notional, -1, 1) : 0;
  writePositionFeatures(out, o, m, ctx);
}

/** Per-position distances, slippage and the notional-weighted market features. */
function writePositionFeatures(out: Float32Array, o: number, m: AccountMargin, ctx: RowContext): void {
  const positions = m.positions;
  const below = m.equity < m.mm; // already liquidatable: every distance is 0
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
  const equalWeights = !(m.notional > 0);
  for (let k = 0; k < positions.length; k++) {
    const p = positions[k]!;
    const v = ctx.market(p.symbol);
    const sign = p.qty > 0 ? 1 : -1;
    const wt = equalWeights ? 1 : p.notional;
    w += wt;
    if (p.notional > maxNotional) maxNotional = p.notional;
    sigmaNotional += p.notional * v.sigmaH;
    const lp = p.liquidationPrice;
    if (below) {
      distPct = 0;
      distSigma = 0;
    } else if (lp !== null && lp > 0 && p.mark > 0) {
      distPct = Math.min(distPct, (100 * Math.abs(p.mark - lp)) / p.mark);
      distSigma = Math.min(distSigma, Math.abs(Math.log(lp / p.mark)) / v.sigmaH);
    }
    if (v.bookMissing) bookMissing = 1;
    else {
      const sideDepth = sign > 0 ? v.bidDepth : v.askDepth; // closing a long sells into the bids
      const halfSpread = v.spreadBps / 2;
      const bps =
        sideDepth > 0
          ? Math.min(SLIPPAGE_CAP_BPS, halfSpread + (SLIPPAGE_BPS_PER_DEPTH * Math.abs(p.qty)) / sideDepth)
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
  out[o + F.concentration] = m.notional > 0 ? maxNotional / m.notional : 1;
  out[o + F.liq_dist_pct] = clamp(distPct, 0, DIST_PCT_CAP);
  out[o + F.liq_dist_sigma] = clamp(distSigma, 0, DIST_SIGMA_CAP);
  out[o + F.buffer_sigma] =
    sigmaNotional > 0
      ? clamp((m.equity - m.mm) / sigmaNotional, -DIST_SIGMA_CAP, DIST_SIGMA_CAP)
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
  out[o + F.volume_log1p] = Math.log1p(volume / w);
  out[o + F.volume_surge] = surge / w;
  out[o + F.spread_bps] = spread / w;
  out[o + F.depth_log1p] = Math.log1p(depth / w);
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
