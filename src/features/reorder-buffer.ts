/**
 * Time ordering of a live event stream: events arriving up to `toleranceMs` behind the newest one seen are
 * held and released in `ts` order (ties keep arrival order); an event older than what has already been
 * released is late and refused. With tolerance 0 an in-order event passes straight through.
 *
 * Storage is an array used as a queue (head index, compacted when half is consumed): pushing an in-order
 * event and releasing are O(1) amortised; an out-of-order event is inserted by binary search (O(buffered)).
 */

export interface Timed {
  /** epoch ms */
  ts: number;
}

export class ReorderBuffer<T extends Timed> {
  private buf: (T | undefined)[] = [];
  private head = 0;
  /** ms: newest ts seen */
  maxSeenTs = Number.NEGATIVE_INFINITY;
  /** ms: everything at or before this was released; older arrivals are late */
  releasedTs = Number.NEGATIVE_INFINITY;

  constructor(readonly toleranceMs: number) {
    if (!(toleranceMs >= 0) || !Number.isFinite(toleranceMs))
      throw new RangeError(`toleranceMs must be a finite number >= 0 (got ${toleranceMs})`);
  }

  get size(): number {
    return this.buf.length - this.head;
  }

  /**
   * Offer an event. Returns false (and keeps nothing) when it is late. Released events are passed to
   * `release` in order, possibly including this one.
   */
  push(ev: T, release: (ev: T) => void): boolean {
    if (ev.ts < this.releasedTs) return false;
    if (ev.ts > this.maxSeenTs) this.maxSeenTs = ev.ts;
    if (this.toleranceMs === 0 && this.size === 0) {
      this.releasedTs = ev.ts;
      release(ev);
      return true;
    }
    this.insert(ev);
    this.releaseUpTo(this.maxSeenTs - this.toleranceMs, release);
    return true;
  }

  /** Release every held event with ts <= `ts`; afterwards anything older than `ts` is late. */
  releaseUpTo(ts: number, release: (ev: T) => void): void {
    const buf = this.buf;
    while (this.head < buf.length) {
      const ev = buf[this.head]!;
      if (ev.ts > ts) break;
      buf[this.head++] = undefined;
      this.releasedTs = ev.ts;
      release(ev);
    }
    if (ts > this.releasedTs) this.releasedTs = ts;
    if (this.head > 1024 && this.head * 2 > buf.length) {
      this.buf = buf.slice(this.head);
      this.head = 0;
    }
  }

  /** A copy of the whole state (for shard snapshots): the events held, in order, and the two clocks. */
  state(): { held: T[]; maxSeenTs: number; releasedTs: number } {
    return { held: this.buf.slice(this.head) as T[], maxSeenTs: this.maxSeenTs, releasedTs: this.releasedTs };
  }

  static fromState<T extends Timed>(
    toleranceMs: number,
    s: { held: T[]; maxSeenTs: number; releasedTs: number },
  ): ReorderBuffer<T> {
    const r = new ReorderBuffer<T>(toleranceMs);
    r.buf = [...s.held];
    r.maxSeenTs = s.maxSeenTs;
    r.releasedTs = s.releasedTs;
    return r;
  }

  /** Release everything held (end of input). */
  drain(release: (ev: T) => void): void {
    this.releaseUpTo(Number.POSITIVE_INFINITY, release);
    this.releasedTs = this.maxSeenTs;
  }

  private insert(ev: T): void {
    const buf = this.buf;
    const last = buf.length > this.head ? buf[buf.length - 1]! : undefined;
    if (last === undefined || last.ts <= ev.ts) {
      buf.push(ev);
      return;
    }
    // first index whose ts is greater than ev.ts (after equal ts: ties keep arrival order)
    let lo = this.head;
    let hi = buf.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (buf[mid]!.ts <= ev.ts) lo = mid + 1;
      else hi = mid;
    }
    buf.splice(lo, 0, ev);
  }
}
