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

/** The mirrored arrays a margin sweep reads (all on SharedArrayBuffers, so a worker reads them in place). */
export interface MirrorArrays {
  cash: Float64Array;
  known: Uint8Array;
  count: Uint16Array;
  inst: Int32Array;
  qty: Float64Array;
  entry: Float64Array;
  overflow: Map<number, MirrorPosition[]>;
}

type Shareable = Float64Array | Uint8Array | Uint16Array | Int32Array;

/** A zeroed typed array of `n` elements like `a`, on a SharedArrayBuffer, holding a copy of `a`. */
function sharedLike<T extends Shareable>(a: T, n: number): T {
  const Ctor = a.constructor as { new (b: SharedArrayBuffer): T; BYTES_PER_ELEMENT: number };
  const b = new Ctor(new SharedArrayBuffer(n * Ctor.BYTES_PER_ELEMENT));
  b.set(a);
  return b;
}

/** Everything a MarginMirror holds (see `MarginMirror.state`); arrays are plain (not shared) copies. */
export interface MarginMirrorState extends Omit<MirrorArrays, 'overflow'> {
  capacity: number;
  overflow: [number, MirrorPosition[]][];
  dirty: Uint8Array;
  dirtyList: number[];
}

export class MarginMirror implements MirrorArrays {
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
    const cap = Math.max(16, initialCapacity);
    this.capacity = cap;
    this.cash = sharedLike(new Float64Array(0), cap);
    this.known = sharedLike(new Uint8Array(0), cap);
    this.dirty = new Uint8Array(cap);
    this.count = sharedLike(new Uint16Array(0), cap);
    this.inst = sharedLike(new Int32Array(0), cap * SLOTS);
    this.qty = sharedLike(new Float64Array(0), cap * SLOTS);
    this.entry = sharedLike(new Float64Array(0), cap * SLOTS);
  }

  /** Make room for account index `i`. */
  ensure(i: number): void {
    if (i < this.capacity) return;
    let cap = this.capacity;
    while (cap <= i) cap *= 2;
    this.cash = sharedLike(this.cash, cap);
    this.known = sharedLike(this.known, cap);
    const dirty = new Uint8Array(cap);
    dirty.set(this.dirty);
    this.dirty = dirty;
    this.count = sharedLike(this.count, cap);
    this.inst = sharedLike(this.inst, cap * SLOTS);
    this.qty = sharedLike(this.qty, cap * SLOTS);
    this.entry = sharedLike(this.entry, cap * SLOTS);
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

  /** A copy of the whole state (for shard snapshots). */
  state(): MarginMirrorState {
    return {
      capacity: this.capacity,
      cash: this.cash.slice(),
      known: this.known.slice(),
      count: this.count.slice(),
      inst: this.inst.slice(),
      qty: this.qty.slice(),
      entry: this.entry.slice(),
      overflow: [...this.overflow].map(([i, ps]) => [i, ps.map((p) => ({ ...p }))]),
      dirty: this.dirty.slice(),
      dirtyList: [...this.dirtyList],
    };
  }

  static fromState(s: MarginMirrorState): MarginMirror {
    const m = new MarginMirror(s.capacity);
    if (m.capacity !== s.capacity || m.cash.length !== s.cash.length || m.inst.length !== s.inst.length)
      throw new RangeError(`margin mirror: capacity ${s.capacity} does not match its arrays`);
    m.cash.set(s.cash);
    m.known.set(s.known);
    m.count.set(s.count);
    m.inst.set(s.inst);
    m.qty.set(s.qty);
    m.entry.set(s.entry);
    for (const [i, ps] of s.overflow)
      m.overflow.set(
        i,
        ps.map((p) => ({ ...p })),
      );
    m.dirty.set(s.dirty);
    m.dirtyList = [...s.dirtyList];
    return m;
  }

  markDirty(i: number): void {
    if (this.dirty[i] === 0) {
      this.dirty[i] = 1;
      this.dirtyList.push(i);
    }
  }
}
