/**
 * Writing one account's feature row: its order-flow reading and its margin state (from the margin sweep),
 * then the per-position and market columns (position-features.ts), with the documented clips and neutral
 * values. This is the only place feature values are produced, for training rows and live vectors
 * alike. Every value written is finite.
 */
import type { FlowReading } from './account-flow.js';
import type { MarginSweep } from './margin-sweep.js';
import type { MarketView } from './market-state.js';
import { writePositionFeatures } from './position-features.js';
import { F, FEATURE_NEUTRAL, FEATURE_PARAMS as P } from './schema.js';

const LN_RATIO_MIN = Math.log(0.01);
const LN_RATIO_MAX = Math.log(1000);
const LEVERAGE_CAP = 200;
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
  /** market views at `ts` by the pipeline's instrument index */
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
  writePositionFeatures(out, o, sweep, r, ctx.views);
}

function log1pPos(x: number): number {
  return x > 0 ? Math.log1p(x) : 0;
}
