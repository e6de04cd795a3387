/**
 * A typed-array copy of the margin core's per-account inputs (cash and open positions in the core's order),
 * refreshed from `MarginBook.snapshot` after every event of the account (and, after a funding settlement,
 * lazily for the symbol's holders: they are marked dirty), so that a snapshot of every
 * account can run the core's batch evaluator instead of one object evaluation per account. It holds no
 * arithmetic of its own: it stores what the margin core reports. Up to `SLOTS` positions per account live
 * in flat arrays; an account with more keeps them in a small overflow map.
 */
import type { AccountMargin } from '../margin/index.js';

export const SLOTS = 4;

export interface MirrorPosition {
  /** the pipeline's instrument index */
  inst: number;
  qty: number; // contracts, signed
  entry: number; // USD
}

export class MarginMirror {
  /** USD, per account */
  cash: Float64Array;
  /** 1 once the margin core knows the account */
  known: Uint8Array;
  /** open positions, per account */
  count: Uint16Array;
  /** slots: account i's positions at [i * SLOTS, i * SLOTS + count) when count <= SLOTS */
  inst: Int32Array;
  qty: Float64Array; // contracts
  entry: Float64Array; // USD
  readonly overflow = new Map<number, MirrorPosition[]>();
  /** 1 when the core's cash moved without an event of the account (funding): refresh before use */
  dirty: Uint8Array;
  /** accounts marked dirty since the last refresh (may repeat ones refreshed since) */
  dirtyList: number[] = [];
  private capacity: number;

  constructor(initialCapacity = 1024) {
    this.capacity = Math.max(16, initialCapacity);
    this.cash = new Float64Array(this.capacity);
    this.known = new Uint8Array(this.capacity);
    this.dirty = new Uint8Array(this.capacity);
    this.count = new Uint16Array(this.capacity);
    this.inst = new Int32Array(this.capacity * SLOTS);
    this.qty = new Float64Array(this.capacity * SLOTS);
    this.entry = new Float64Array(this.capacity * SLOTS);
  }

  /** Make room for account index `i`. */
  ensure(i: number): void {
    if (i < this.capacity) return;
    let cap = this.capacity;
    while (cap <= i) cap *= 2;
    const grow = <T extends Float64Array | Uint8Array | Uint16Array | Int32Array>(a: T, n: number): T => {
      const b = new (a.constructor as new (n: number) => T)(n);
      b.set(a);
      return b;
    };
    this.cash = grow(this.cash, cap);
    this.known = grow(this.known, cap);
    this.dirty = grow(this.dirty, cap);
    this.count = grow(this.count, cap);
    this.inst = grow(this.inst, cap * SLOTS);
    this.qty = grow(this.qty, cap * SLOTS);
    this.entry = grow(this.entry, cap * SLOTS);
    this.capacity = cap;
  }

  /** Copy the margin core's view of account `i`. */
  set(i: number, m: AccountMargin, instIndex: (symbol: string) => number): void {
    this.known[i] = 1;
    this.dirty[i] = 0;
    this.cash[i] = m.cash;
    const n = m.positions.length;
    this.count[i] = n;
    if (n > SLOTS) {
      this.overflow.set(
        i,
        m.positions.map((p) => ({ inst: instIndex(p.symbol), qty: p.qty, entry: p.avgEntry })),
      );
      return;
    }
    this.overflow.delete(i);
    const o = i * SLOTS;
    for (let k = 0; k < n; k++) {
      const p = m.positions[k]!;
      this.inst[o + k] = instIndex(p.symbol);
      this.qty[o + k] = p.qty;
      this.entry[o + k] = p.avgEntry;
    }
  }

  markDirty(i: number): void {
    if (this.dirty[i] === 0) {
      this.dirty[i] = 1;
      this.dirtyList.push(i);
    }
  }
}
