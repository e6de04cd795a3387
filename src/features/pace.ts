/**
 * Cooperative pacing of long synchronous work (restoring a snapshot: re-feeding candles, rebuilding the
 * ids-seen set): `count(n)` after each unit of work, and `await pause()` when it says so, which yields to the
 * event loop (`setImmediate`: timers and I/O run, e.g. a lease renewal) every `every` units.
 */
export class Pacer {
  /** times it yielded */
  yields = 0;
  private done = 0;

  constructor(readonly every = 4096) {}

  /** Count `n` units; true when the caller should `await pause()`. */
  count(n = 1): boolean {
    this.done += n;
    return this.done >= this.every;
  }

  async pause(): Promise<void> {
    this.done = 0;
    this.yields++;
    await new Promise<void>((r) => setImmediate(r));
  }
}
