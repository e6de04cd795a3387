/**
 * Order-flow state of every account: a fixed-size record of numbers per account in one growable
 * Float64Array (doubling, so adding an account is O(1) amortised), no allocation per event. Windows are exponentially decayed sums (see decay.ts): fast (FEATURE_PARAMS
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

/** Field offsets inside an account's record, in record order (inlined as constants: hot path). */
// biome-ignore lint/suspicious/noConstEnum: file-local, never exported; esbuild/tsc inline the offsets
const enum K {
  lastTs, // ms: time the decayed sums were last brought to
  // fast window
  orders,
  cancels,
  fills,
  takerUsd,
  fillUsd,
  doubleDownUsd,
  cutLossUsd,
  levChange,
  // slow window
  depositUsd,
  withdrawalUsd,
  liquidations,
  // recency, ms (-1 = never)
  lastFillTs,
  lastDepositTs,
  lastLiqTs,
  // equity peak, USD
  peakBucket,
  peakCur,
  peakPrev,
  lastEquity, // the latest sample, used when the peak window holds none
  STRIDE,
}

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

/** A Float64Array on a SharedArrayBuffer (snapshot workers read the records in place). */
function sharedFloat64(n: number): Float64Array {
  return new Float64Array(new SharedArrayBuffer(n * Float64Array.BYTES_PER_ELEMENT));
}

export class AccountFlows {
  /**
   * One record of K.STRIDE numbers per account, interleaved (an account's fields share cache lines), on a
   * SharedArrayBuffer. Replaced (not resized) when it grows: read it again after adding accounts.
   */
  data: Float64Array;
  private capacity: number;
  size = 0;

  constructor(initialCapacity = 1024) {
    this.capacity = Math.max(16, initialCapacity);
    this.data = sharedFloat64(this.capacity * K.STRIDE);
  }

  /** A new account slot; returns its index. */
  add(ts: number): number {
    if (this.size === this.capacity) {
      const next = sharedFloat64(this.capacity * 2 * K.STRIDE);
      next.set(this.data);
      this.data = next;
      this.capacity *= 2;
    }
    const i = this.size++;
    const d = this.data;
    const o = i * K.STRIDE;
    d[o + K.lastTs] = ts;
    d[o + K.lastFillTs] = -1;
    d[o + K.lastDepositTs] = -1;
    d[o + K.lastLiqTs] = -1;
    d[o + K.peakBucket] = -1;
    d[o + K.peakCur] = Number.NEGATIVE_INFINITY;
    d[o + K.peakPrev] = Number.NEGATIVE_INFINITY;
    d[o + K.lastEquity] = Number.NEGATIVE_INFINITY;
    return i;
  }

  /** Bring account `i`'s decayed sums to `ts` (ts >= its last update); returns its record offset. */
  private touch(i: number, ts: number): number {
    const d = this.data;
    const o = i * K.STRIDE;
    const dt = ts - d[o + K.lastTs]!;
    if (dt <= 0) return o;
    const f = decayFactor(dt, P.fastTauMs);
    for (let k = K.orders; k <= K.levChange; k++) d[o + k]! *= f;
    const g = decayFactor(dt, P.slowTauMs);
    for (let k = K.depositUsd; k <= K.liquidations; k++) d[o + k]! *= g;
    d[o + K.lastTs] = ts;
    return o;
  }

  onOrder(i: number, ts: number): void {
    this.data[this.touch(i, ts) + K.orders]! += 1;
  }

  onCancel(i: number, ts: number): void {
    this.data[this.touch(i, ts) + K.cancels]! += 1;
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
    const o = this.touch(i, ts);
    const d = this.data;
    d[o + K.fills]! += 1;
    d[o + K.fillUsd]! += usd;
    if (taker) d[o + K.takerUsd]! += usd;
    d[o + K.doubleDownUsd]! += doubleDownUsd;
    d[o + K.cutLossUsd]! += cutLossUsd;
    d[o + K.levChange]! += levChange;
    d[o + K.lastFillTs] = ts;
  }

  /** usd > 0 for a deposit, < 0 for a withdrawal */
  onTransfer(i: number, ts: number, usd: number, levChange: number): void {
    const o = this.touch(i, ts);
    const d = this.data;
    if (usd > 0) {
      d[o + K.depositUsd]! += usd;
      d[o + K.lastDepositTs] = ts;
    } else d[o + K.withdrawalUsd]! -= usd;
    d[o + K.levChange]! += levChange;
  }

  onLiquidation(i: number, ts: number): void {
    const o = this.touch(i, ts);
    this.data[o + K.liquidations]! += 1;
    this.data[o + K.lastLiqTs] = ts;
  }

  /** Record the account's equity (USD) after one of its margin-changing events. */
  sampleEquity(i: number, ts: number, equity: number): void {
    const d = this.data;
    const o = i * K.STRIDE;
    d[o + K.lastEquity] = equity;
    const b = Math.floor(ts / P.peakBucketMs);
    const cur = d[o + K.peakBucket]!;
    if (b === cur) {
      if (equity > d[o + K.peakCur]!) d[o + K.peakCur] = equity;
      return;
    }
    d[o + K.peakPrev] = b === cur + 1 ? d[o + K.peakCur]! : Number.NEGATIVE_INFINITY;
    d[o + K.peakCur] = equity;
    d[o + K.peakBucket] = b;
  }

  /** A copy of the records in use (for shard snapshots). */
  state(): { size: number; capacity: number; data: Float64Array } {
    return { size: this.size, capacity: this.capacity, data: this.data.slice(0, this.size * K.STRIDE) };
  }

  static fromState(s: { size: number; capacity: number; data: Float64Array }): AccountFlows {
    if (s.data.length !== s.size * K.STRIDE)
      throw new RangeError(`account flows: ${s.data.length} values for ${s.size} accounts`);
    const f = new AccountFlows(s.capacity);
    f.data.set(s.data);
    f.size = s.size;
    return f;
  }

  /** Account `i`'s figures at `ts` (>= its last event), without changing any state. */
  read(i: number, ts: number, norm: RateNorm, out: FlowReading): FlowReading {
    return readFlow(this.data, i, ts, norm, out);
  }
}

/** Account `i`'s figures at `ts` from the records `d` (AccountFlows.data), without changing them. */
export function readFlow(
  d: Float64Array,
  i: number,
  ts: number,
  norm: RateNorm,
  out: FlowReading,
): FlowReading {
  const o = i * K.STRIDE;
  const dt = ts - d[o + K.lastTs]!;
  const h = decayFactor(dt, P.fastTauMs) * norm.perHour;
  const g = decayFactor(dt, P.slowTauMs) * norm.perDay;
  out.ordersH = d[o + K.orders]! * h;
  out.cancelsH = d[o + K.cancels]! * h;
  out.fillsH = d[o + K.fills]! * h;
  const fillUsd = d[o + K.fillUsd]!;
  out.fillUsdH = fillUsd * h;
  out.doubleDownUsdH = d[o + K.doubleDownUsd]! * h;
  out.cutLossUsdH = d[o + K.cutLossUsd]! * h;
  out.levChangeH = d[o + K.levChange]! * h;
  out.depositUsdD = d[o + K.depositUsd]! * g;
  out.withdrawalUsdD = d[o + K.withdrawalUsd]! * g;
  out.liquidationsD = d[o + K.liquidations]! * g;
  const lastFill = d[o + K.lastFillTs]!;
  out.fillsMissing = lastFill < 0 || ts - lastFill > 3 * P.fastTauMs;
  out.takerShare = out.fillsMissing || !(fillUsd > 0) ? 0.5 : d[o + K.takerUsd]! / fillUsd;
  const lastDep = d[o + K.lastDepositTs]!;
  out.sinceDepositH = lastDep < 0 ? Number.NaN : (ts - lastDep) / HOUR_MS;
  const lastLiq = d[o + K.lastLiqTs]!;
  out.sinceLiqH = lastLiq < 0 ? Number.NaN : (ts - lastLiq) / HOUR_MS;
  const b = Math.floor(ts / P.peakBucketMs);
  const pb = d[o + K.peakBucket]!;
  out.peakEquity =
    b === pb
      ? Math.max(d[o + K.peakCur]!, d[o + K.peakPrev]!)
      : b === pb + 1
        ? d[o + K.peakCur]!
        : d[o + K.lastEquity]!;
  return out;
}
