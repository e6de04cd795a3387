/**
 * Order-flow state of every account, struct-of-arrays: one slot per account in growable Float64Arrays
 * (doubling, so adding an account is O(1) amortised), a fixed number of numbers per account, no
 * allocation per event. Windows are exponentially decayed sums (see decay.ts): fast (FEATURE_PARAMS
 * fastTauMs) for orders, cancels, fills, notional, doubling down, leverage change; slow (slowTauMs) for
 * deposits, withdrawals and liquidations. The equity peak for the drawdown is the max over the current
 * and the previous `peakBucketMs` bucket of the equity sampled after each of the account's own
 * margin-changing events (the pipeline does not revisit every holder on every mark); when the account has
 * not acted within that window, the peak is its equity after its last action.
 */
import { decayFactor, rateScale } from './decay.js';
import { FEATURE_PARAMS as P } from './schema.js';

const HOUR_MS = 3_600_000;
const DAY_MS = 86_400_000;

/** Column names, in slot order. */
const COLUMNS = [
  'lastTs', // ms: time the decayed sums were last brought to
  // fast window
  'orders',
  'cancels',
  'fills',
  'takerUsd',
  'fillUsd',
  'doubleDownUsd',
  'cutLossUsd',
  'levChange',
  // slow window
  'depositUsd',
  'withdrawalUsd',
  'liquidations',
  // recency
  'lastFillTs',
  'lastDepositTs',
  'lastLiqTs',
  // equity peak
  'peakBucket',
  'peakCur',
  'peakPrev',
  'lastEquity', // USD: the latest sample, used when the peak window holds none
] as const;
type Column = (typeof COLUMNS)[number];

/** An account's flow figures at a snapshot time. */
export interface FlowReading {
  ordersH: number; // orders / h
  cancelsH: number; // cancels / h
  fillsH: number; // fills / h
  fillUsdH: number; // USD / h
  takerShare: number; // fraction (0.5 when fillsMissing)
  doubleDownUsdH: number; // USD / h
  cutLossUsdH: number; // USD / h
  levChangeH: number; // leverage / h
  depositUsdD: number; // USD / day
  withdrawalUsdD: number; // USD / day
  liquidationsD: number; // liquidations / day
  sinceDepositH: number; // h, NaN = never
  sinceLiqH: number; // h, NaN = never
  /** USD: highest sampled equity in the peak window, else the last sample, else -Infinity */
  peakEquity: number;
  fillsMissing: boolean;
}

/** Per-snapshot multipliers from decayed sums to rates (they depend only on the observed time). */
export interface RateNorm {
  /** fast window: decayed sum -> per hour */
  perHour: number;
  /** slow window: decayed sum -> per day */
  perDay: number;
}

export function rateNorm(observedMs: number): RateNorm {
  return {
    perHour: rateScale(P.fastTauMs, observedMs, P.minObservedMs, HOUR_MS),
    perDay: rateScale(P.slowTauMs, observedMs, P.minObservedMs, DAY_MS),
  };
}

export function emptyFlowReading(): FlowReading {
  return {
    ordersH: 0,
    cancelsH: 0,
    fillsH: 0,
    fillUsdH: 0,
    takerShare: 0.5,
    doubleDownUsdH: 0,
    cutLossUsdH: 0,
    levChangeH: 0,
    depositUsdD: 0,
    withdrawalUsdD: 0,
    liquidationsD: 0,
    sinceDepositH: Number.NaN,
    sinceLiqH: Number.NaN,
    peakEquity: Number.NEGATIVE_INFINITY,
    fillsMissing: true,
  };
}

export class AccountFlows {
  private cols: Record<Column, Float64Array>;
  private capacity: number;
  size = 0;

  constructor(initialCapacity = 1024) {
    this.capacity = Math.max(16, initialCapacity);
    this.cols = AccountFlows.alloc(this.capacity);
  }

  private static alloc(n: number): Record<Column, Float64Array> {
    return Object.fromEntries(COLUMNS.map((c) => [c, new Float64Array(n)])) as Record<Column, Float64Array>;
  }

  /** A new account slot; returns its index. */
  add(ts: number): number {
    if (this.size === this.capacity) {
      const next = AccountFlows.alloc(this.capacity * 2);
      for (const c of COLUMNS) next[c].set(this.cols[c]);
      this.cols = next;
      this.capacity *= 2;
    }
    const i = this.size++;
    const c = this.cols;
    c.lastTs[i] = ts;
    c.lastFillTs[i] = -1;
    c.lastDepositTs[i] = -1;
    c.lastLiqTs[i] = -1;
    c.peakBucket[i] = -1;
    c.peakCur[i] = Number.NEGATIVE_INFINITY;
    c.peakPrev[i] = Number.NEGATIVE_INFINITY;
    c.lastEquity[i] = Number.NEGATIVE_INFINITY;
    return i;
  }

  /** Bring account `i`'s decayed sums to `ts` (ts >= its last update). */
  private touch(i: number, ts: number): void {
    const c = this.cols;
    const dt = ts - c.lastTs[i]!;
    if (dt <= 0) return;
    const f = decayFactor(dt, P.fastTauMs);
    c.orders[i]! *= f;
    c.cancels[i]! *= f;
    c.fills[i]! *= f;
    c.takerUsd[i]! *= f;
    c.fillUsd[i]! *= f;
    c.doubleDownUsd[i]! *= f;
    c.cutLossUsd[i]! *= f;
    c.levChange[i]! *= f;
    const g = decayFactor(dt, P.slowTauMs);
    c.depositUsd[i]! *= g;
    c.withdrawalUsd[i]! *= g;
    c.liquidations[i]! *= g;
    c.lastTs[i] = ts;
  }

  onOrder(i: number, ts: number): void {
    this.touch(i, ts);
    this.cols.orders[i]! += 1;
  }

  onCancel(i: number, ts: number): void {
    this.touch(i, ts);
    this.cols.cancels[i]! += 1;
  }

  /** usd: fill notional; doubleDownUsd / cutLossUsd: the parts that added to / cut a losing position */
  onFill(
    i: number,
    ts: number,
    usd: number,
    taker: boolean,
    doubleDownUsd: number,
    cutLossUsd: number,
    levChange: number,
  ): void {
    this.touch(i, ts);
    const c = this.cols;
    c.fills[i]! += 1;
    c.fillUsd[i]! += usd;
    if (taker) c.takerUsd[i]! += usd;
    c.doubleDownUsd[i]! += doubleDownUsd;
    c.cutLossUsd[i]! += cutLossUsd;
    c.levChange[i]! += levChange;
    c.lastFillTs[i] = ts;
  }

  /** usd > 0 for a deposit, < 0 for a withdrawal */
  onTransfer(i: number, ts: number, usd: number, levChange: number): void {
    this.touch(i, ts);
    const c = this.cols;
    if (usd > 0) {
      c.depositUsd[i]! += usd;
      c.lastDepositTs[i] = ts;
    } else c.withdrawalUsd[i]! -= usd;
    c.levChange[i]! += levChange;
  }

  onLiquidation(i: number, ts: number): void {
    this.touch(i, ts);
    this.cols.liquidations[i]! += 1;
    this.cols.lastLiqTs[i] = ts;
  }

  /** Record the account's equity (USD) after one of its margin-changing events. */
  sampleEquity(i: number, ts: number, equity: number): void {
    const c = this.cols;
    c.lastEquity[i] = equity;
    const b = Math.floor(ts / P.peakBucketMs);
    const cur = c.peakBucket[i]!;
    if (b === cur) {
      if (equity > c.peakCur[i]!) c.peakCur[i] = equity;
      return;
    }
    c.peakPrev[i] = b === cur + 1 ? c.peakCur[i]! : Number.NEGATIVE_INFINITY;
    c.peakCur[i] = equity;
    c.peakBucket[i] = b;
  }

  /** Account `i`'s figures at `ts` (>= its last event), without changing any state. */
  read(i: number, ts: number, norm: RateNorm, out: FlowReading): FlowReading {
    const c = this.cols;
    const dt = ts - c.lastTs[i]!;
    const h = decayFactor(dt, P.fastTauMs) * norm.perHour;
    const d = decayFactor(dt, P.slowTauMs) * norm.perDay;
    out.ordersH = c.orders[i]! * h;
    out.cancelsH = c.cancels[i]! * h;
    out.fillsH = c.fills[i]! * h;
    out.fillUsdH = c.fillUsd[i]! * h;
    out.doubleDownUsdH = c.doubleDownUsd[i]! * h;
    out.cutLossUsdH = c.cutLossUsd[i]! * h;
    out.levChangeH = c.levChange[i]! * h;
    out.depositUsdD = c.depositUsd[i]! * d;
    out.withdrawalUsdD = c.withdrawalUsd[i]! * d;
    out.liquidationsD = c.liquidations[i]! * d;
    const lastFill = c.lastFillTs[i]!;
    out.fillsMissing = lastFill < 0 || ts - lastFill > 3 * P.fastTauMs;
    const fillUsd = c.fillUsd[i]!;
    out.takerShare = out.fillsMissing || !(fillUsd > 0) ? 0.5 : c.takerUsd[i]! / fillUsd;
    const lastDep = c.lastDepositTs[i]!;
    out.sinceDepositH = lastDep < 0 ? Number.NaN : (ts - lastDep) / HOUR_MS;
    const lastLiq = c.lastLiqTs[i]!;
    out.sinceLiqH = lastLiq < 0 ? Number.NaN : (ts - lastLiq) / HOUR_MS;
    const b = Math.floor(ts / P.peakBucketMs);
    const pb = c.peakBucket[i]!;
    out.peakEquity =
      b === pb ? Math.max(c.peakCur[i]!, c.peakPrev[i]!) : b === pb + 1 ? c.peakCur[i]! : c.lastEquity[i]!;
    return out;
  }
}
