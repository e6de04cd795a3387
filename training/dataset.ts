/**
 * Training rows from canonical histories, streamed: every `everyMs` the FeaturePipeline snapshots each
 * account holding a position (the same code the service scores live); rows are labelled afterwards from
 * the history's `liquidation` events within the horizon. Rows of accounts already under maintenance
 * margin at the snapshot (being liquidated) are dropped, and with `maxMarginRatio` those at or above it. Nothing but the rows is kept in memory, all of it in
 * typed arrays: a plain JS array grown by `push` aborts the whole process (V8's uncatchable "invalid size"
 * fatal error) past ~100-117M elements, about 13 days of a 30,000-account venue at 5-minute snapshots.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { emptyStats, readEventsFile } from '../src/events/reader.js';
import { FeaturePipeline } from '../src/features/pipeline.js';
import { F, FEATURE_COUNT } from '../src/features/schema.js';
import { type LiquidationTimes, labelRows } from './labels.js';

export interface HistoryRows {
  file: string;
  rows: number;
  cols: number;
  /** rows x cols, raw feature values */
  x: Float32Array;
  y: Float32Array;
  /** snapshot time, epoch ms */
  ts: Float64Array;
  /** index into `accounts` */
  account: Uint32Array;
  accounts: string[];
  liquidations: LiquidationTimes;
  /** first and last event time, epoch ms */
  startTs: number;
  endTs: number;
  events: number;
  /** rows dropped because the account was already below maintenance margin */
  excludedInLiquidation: number;
  /** rows dropped by `BuildOptions.maxMarginRatio` (absent without it) */
  excludedAboveMarginRatio?: number;
}

export interface BuildOptions {
  everyMs: number;
  horizonMs: number;
  onProgress?: (events: number) => void;
  /**
   * x (equity / MM): keep only rows whose account is below this ratio at the snapshot (the accounts a
   * margin-ratio gate lets the reduce tier act on); absent: every row with a position
   */
  maxMarginRatio?: number;
  /** rows per chunk of the snapshot times and account indices while they grow (tests use a small one) */
  chunkRows?: number;
}

/** rows per chunk of the growing ts and account columns: 8 MB of Float64 */
export const DEFAULT_CHUNK_ROWS = 1 << 20;

class Growable {
  private parts: Float32Array[] = [];
  length = 0;
  push(chunk: Float32Array): void {
    this.parts.push(chunk);
    this.length += chunk.length;
  }
  concat(): Float32Array {
    const out = new Float32Array(this.length);
    let o = 0;
    for (const p of this.parts) {
      out.set(p, o);
      o += p.length;
    }
    this.parts = [out];
    return out;
  }
}

/**
 * A typed array grown one value at a time: values go into fixed-size chunks (`chunkSize` each), joined into
 * one array of exactly `length` by `concat`. Unlike a plain `number[]`, no JS array ever holds the values,
 * so it never meets V8's element limit; it holds as many as the typed array the caller wants at the end.
 */
export class GrowableColumn<T extends Float64Array | Uint32Array> {
  private parts: T[] = [];
  private current: T;
  private fill = 0;
  length = 0;

  constructor(
    private readonly make: (length: number) => T,
    private readonly chunkSize: number = DEFAULT_CHUNK_ROWS,
  ) {
    if (!Number.isInteger(chunkSize) || chunkSize < 1)
      throw new RangeError(`chunk size must be a positive integer, got ${chunkSize}`);
    this.current = make(chunkSize);
  }

  push(value: number): void {
    if (this.fill === this.chunkSize) {
      this.parts.push(this.current);
      this.current = this.make(this.chunkSize);
      this.fill = 0;
    }
    this.current[this.fill++] = value;
    this.length++;
  }

  /** All values pushed so far, in order, in one array (a new one each call; pushing may go on after). */
  concat(): T {
    const out = this.make(this.length);
    let o = 0;
    for (const p of this.parts) {
      out.set(p, o);
      o += p.length;
    }
    out.set(this.current.subarray(0, this.fill), o);
    return out;
  }
}

export async function buildHistoryRows(file: string, opts: BuildOptions): Promise<HistoryRows> {
  // readEventsFile refuses duplicate ids: the pipeline need not remember them a second time
  const pipeline = new FeaturePipeline({ idsCheckedUpstream: true });
  const accountIndex = new Map<string, number>();
  const accounts: string[] = [];
  const indexOf = (id: string): number => {
    let i = accountIndex.get(id);
    if (i === undefined) {
      i = accounts.length;
      accountIndex.set(id, i);
      accounts.push(id);
    }
    return i;
  };
  const x = new Growable();
  // snapshot time (epoch ms) and account index of each row
  const tsCol = new GrowableColumn((n) => new Float64Array(n), opts.chunkRows);
  const accCol = new GrowableColumn((n) => new Uint32Array(n), opts.chunkRows);
  const liquidations: LiquidationTimes = new Map();
  let excluded = 0;
  let aboveRatio = 0;
  const maxLog = opts.maxMarginRatio === undefined ? null : Math.log(opts.maxMarginRatio);
  let nextSnap = Number.NaN;
  let startTs = Number.NaN;
  let endTs = Number.NaN;
  let events = 0;
  const mrCol = F.margin_ratio_log;

  const snapshotAt = (ts: number) => {
    const snap = pipeline.snapshot(ts, { onlyWithPosition: true });
    const keep: number[] = [];
    for (let r = 0; r < snap.rows; r++) {
      // margin_ratio_log < 0: equity < MM, the venue is already liquidating this account
      const mr = snap.matrix[r * FEATURE_COUNT + mrCol] as number;
      if (mr < 0) excluded++;
      else if (maxLog !== null && !(mr < maxLog)) aboveRatio++;
      else keep.push(r);
    }
    const rows = new Float32Array(keep.length * FEATURE_COUNT);
    keep.forEach((r, k) => {
      rows.set(snap.matrix.subarray(r * FEATURE_COUNT, (r + 1) * FEATURE_COUNT), k * FEATURE_COUNT);
      tsCol.push(ts);
      accCol.push(indexOf(snap.accounts[r] as string));
    });
    x.push(rows);
  };

  for await (const { event } of readEventsFile(file, emptyStats())) {
    events++;
    if (Number.isNaN(startTs)) {
      startTs = event.ts;
      nextSnap = Math.ceil(event.ts / opts.everyMs) * opts.everyMs;
    }
    // every snapshot time strictly before this event sees the state of all events before it
    while (event.ts > nextSnap) {
      snapshotAt(nextSnap);
      nextSnap += opts.everyMs;
    }
    pipeline.apply(event);
    endTs = event.ts;
    if (event.type === 'liquidation') {
      const i = indexOf(event.account);
      const list = liquidations.get(i);
      if (list) {
        if (list[list.length - 1] !== event.ts) list.push(event.ts);
      } else liquidations.set(i, [event.ts]);
    }
    if (events % 100_000 === 0) opts.onProgress?.(events);
  }
  pipeline.flush();
  opts.onProgress?.(events);
  const matrix = x.concat();
  const ts = tsCol.concat();
  const account = accCol.concat();
  return {
    file,
    rows: ts.length,
    cols: FEATURE_COUNT,
    x: matrix,
    y: labelRows(ts, account, liquidations, opts.horizonMs),
    ts,
    account,
    accounts,
    liquidations,
    startTs,
    endTs,
    events,
    excludedInLiquidation: excluded,
    ...(maxLog !== null ? { excludedAboveMarginRatio: aboveRatio } : {}),
  };
}

/** sha256 over each file's name, size and bytes: identifies the data a model was trained on. */
export async function fingerprintFiles(files: readonly string[]): Promise<string> {
  const h = createHash('sha256');
  for (const f of files) {
    h.update(`${basename(f)}:${(await stat(f)).size}\n`);
    for await (const chunk of createReadStream(f)) h.update(chunk as Buffer);
  }
  return h.digest('hex');
}

/** Stable 0..99 bucket of an account id: the unseen-trader hold-out is decided by it. */
export function accountBucket(account: string): number {
  return createHash('sha1').update(account).digest().readUInt16BE(0) % 100;
}
