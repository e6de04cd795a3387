/**
 * Exactness of shard state snapshots, without Redis: a simulated crash day (two instruments, 24 h) is fed
 * to a ShardState the way the runner feeds it (apply, commit decisions on each mark for the symbol's
 * holders, sweep, preview evaluations at the end of each batch), recording everything the runner would
 * write: apply results, feature rows (bit for bit), pds, evaluations (decisions, margins, epochs,
 * restrictions and their changes), market inputs and margin states after account events. At several batch
 * boundaries the state is snapshotted (v8 + gzip, as stored), restored and fed the rest of the day: every
 * record after the snapshot, and the final state, must be identical, byte for byte, to the uninterrupted
 * run, and to a state rebuilt the runner's way (the whole log replayed up to the same entry, then on).
 */
import { serialize } from 'node:v8';
import { gunzipSync, gzipSync } from 'node:zlib';
import { beforeAll, describe, expect, it } from 'vitest';
import type { CanonicalEvent } from '../../src/events/schema.js';
import { INPUT_WIDTH, REBASE_CANDLES } from '../../src/features/indicators.js';
import { Pacer } from '../../src/features/pace.js';
import { FEATURE_COUNT, FEATURE_NAMES } from '../../src/features/schema.js';
import { resolvePolicyConfig } from '../../src/margin/index.js';
import type { PdScorer } from '../../src/model/types.js';
import { ShardState, type ShardStateData } from '../../src/service/evaluator/shard-state.js';
import {
  type DecodeProgress,
  DecodeStoppedError,
  decodeSnapshot,
  deserialiseState,
  encodeSnapshot,
  policyHash,
  refusal,
  SNAPSHOT_VERSION,
  serialiseState,
} from '../../src/service/evaluator/snapshot.js';
import { MemorySink, simulate } from '../../src/sim/index.js';
import { MIN, T0 } from '../features/builders.js';
import { syntheticHistory } from '../features/synthetic-history.js';
import { logisticScorer } from './test-model.js';

const SHARDS = 2;
const SHARD = 0;
/** entries per batch (the runner's read size in the service tests) */
const BATCH = 100;
const policy = resolvePolicyConfig({});
/** pd from the margin ratio (0.5 at ratio 3), as the service tests' model: restrictions happen */
const scorer: PdScorer = logisticScorer(FEATURE_NAMES, 'margin_ratio_log', 4, Math.log(3));

/**
 * A canonical text of a value: numbers as the hex of their float64 bits (so -0, NaN and every bit count,
 * whatever the engine's internal representation), typed arrays as their bytes, keys in their order.
 */
function canon(v: unknown): string {
  if (typeof v === 'number') {
    const b = Buffer.alloc(8);
    b.writeDoubleBE(v);
    return `n${b.toString('hex')}`;
  }
  if (v === undefined) return 'u';
  if (v === null || typeof v === 'boolean' || typeof v === 'string') return JSON.stringify(v);
  if (ArrayBuffer.isView(v)) return `b${Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('hex')}`;
  if (Array.isArray(v)) return `[${v.map(canon).join(',')}]`;
  if (v instanceof Map) return `M${canon([...v])}`;
  if (v instanceof Set) return `S${canon([...v])}`;
  return `{${Object.entries(v as object)
    .map(([k, x]) => `${JSON.stringify(k)}:${canon(x)}`)
    .join(',')}}`;
}

/** Feeds a ShardState as ShardRunner does, recording one v8 buffer per entry of what the runner would write. */
class Driver {
  readonly records: string[] = [];
  private readonly dirty = new Set<string>();
  private out: unknown[] = [];
  changes = 0;

  constructor(public state: ShardState) {}

  async entry(ev: CanonicalEvent): Promise<void> {
    this.out = [];
    const r = this.state.apply(ev);
    this.out.push(r);
    if (r.kind === 'applied') {
      if ('symbol' in ev && (ev.type === 'mark' || ev.type === 'book' || ev.type === 'instrument'))
        this.out.push(this.state.marketInput(ev.symbol));
      if (r.account !== undefined) {
        this.dirty.add(r.account);
        this.out.push(this.state.pipeline.book.snapshot(r.account));
      }
      if (r.markSymbol !== undefined) await this.evaluate(this.state.holders(r.markSymbol), ev.ts, true);
      for (const c of this.state.sweep(this.state.clock, r.account)) {
        this.dirty.add(c.account);
        this.out.push(c);
        this.changes++;
      }
    }
    this.records.push(canon(this.out));
  }

  /** the end of a batch: accounts with own events since their last evaluation get a preview */
  async finishBatch(): Promise<void> {
    this.out = [];
    if (this.dirty.size > 0 && Number.isFinite(this.state.clock)) {
      const accounts = [...this.dirty].sort();
      this.dirty.clear();
      await this.evaluate(accounts, this.state.clock, false);
    }
    this.dirty.clear();
    this.records.push(canon(this.out));
  }

  private async evaluate(accounts: string[], ts: number, commit: boolean): Promise<void> {
    if (accounts.length === 0) return;
    const m = this.state.features(accounts, ts);
    const pd = await scorer.score(m, accounts.length);
    const pds = Array.from(pd, (x) => (Number.isFinite(x) ? x : null));
    const evals = this.state.decide(accounts, pds, ts, commit);
    if (commit) for (const a of accounts) this.dirty.delete(a);
    for (const e of evals) if (e.change) this.changes++;
    this.out.push(Buffer.from(m.buffer, m.byteOffset, m.byteLength), pds, evals);
  }
}

let events: CanonicalEvent[] = [];

beforeAll(async () => {
  const sink = new MemorySink();
  await simulate('flash-crash', { accounts: 40, seed: 5, sink });
  // as the runner gets them: decoded from the log's JSON
  events = sink.events.map((e) => JSON.parse(JSON.stringify(e)) as CanonicalEvent);
}, 60_000);

/** Feed events [from, to) in batches aligned on multiples of BATCH (as a live runner reads them). */
async function feed(d: Driver, from: number, to: number): Promise<void> {
  for (let i = from; i < to; i++) {
    await d.entry(events[i]!);
    if ((i + 1) % BATCH === 0 || i + 1 === to) await d.finishBatch();
  }
}

function firstDifference(a: string[], b: string[]): number {
  const n = Math.max(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] === undefined || a[i] !== b[i]) return i;
  return -1;
}

const stateText = (s: ShardState): string => canon(s.saveState());

/** A snapshot of `state` as the runner writes it after log entry `at` (no model named). */
const encodeAt = (state: ShardState, at: number) =>
  encodeSnapshot(state, {
    entry: `${at}-0`,
    entriesRead: at,
    modelVersion: null,
    policyHash: policyHash(policy),
  });

/** Counts the turns of the event loop (a setImmediate callback re-armed each turn) until `stop`. */
function loopTurns(): { readonly turns: number; stop(): void } {
  let turns = 0;
  let running = true;
  const tick = (): void => {
    turns++;
    if (running) setImmediate(tick);
  };
  setImmediate(tick);
  return {
    get turns() {
      return turns;
    },
    stop() {
      running = false;
    },
  };
}

describe('a restored shard state', () => {
  it('gives the same results, bit for bit, as the state that applied every entry', async () => {
    const n = events.length;
    expect(n).toBeGreaterThan(10_000);
    const live = new Driver(new ShardState(SHARD, SHARDS, policy, { snapshots: true }));
    // snapshot points: batch boundaries spread over the day (the runner snapshots after a committed batch)
    const points = [1, 2, 3, 4, 5, 6, 7].map((k) => Math.floor((n * k) / 8 / BATCH) * BATCH);
    const snaps: { at: number; data: Buffer; records: number; midCandle: boolean; restricted: number }[] = [];
    let done = 0;
    for (const at of points) {
      await feed(live, done, at);
      done = at;
      const { data } = await encodeSnapshot(live.state, {
        entry: `${at}-0`,
        entriesRead: at,
        modelVersion: scorer.info.version,
        policyHash: policyHash(policy),
      });
      const saved = live.state.saveState();
      snaps.push({
        at,
        data,
        records: live.records.length,
        // the open 1 m candle of some instrument has marks: the snapshot cuts a candle
        midCandle: saved.pipeline.features.markets.some((m) => m.m1.hasMark),
        restricted: [...live.state.restrictionStates().values()].filter((r) => r.version > 0).length,
      });
    }
    await feed(live, done, n);
    // what the points cover: a candle cut in two, and accounts restricted (and lifted) before a snapshot
    expect(snaps.some((s) => s.midCandle)).toBe(true);
    expect(snaps.some((s) => s.restricted > 0)).toBe(true);
    expect(live.changes).toBeGreaterThan(0);
    const finalLive = stateText(live.state);

    for (const s of snaps) {
      const meta = {
        ...(await encodeAt(live.state, s.at)).meta,
      };
      const restored = new Driver(await decodeSnapshot(meta, s.data, policy));
      await feed(restored, s.at, n);
      const after = live.records.slice(s.records);
      expect(restored.records.length).toBe(after.length);
      expect(firstDifference(restored.records, after), `snapshot at entry ${s.at}`).toBe(-1);
      expect(stateText(restored.state) === finalLive, `final state from entry ${s.at}`).toBe(true);
    }
  }, 300_000);

  it('equals a state rebuilt the runner way: the whole log replayed up to the entry, then fed on', async () => {
    const n = events.length;
    const at = Math.floor((n * 3) / 4 / BATCH) * BATCH;
    const live = new Driver(new ShardState(SHARD, SHARDS, policy, { snapshots: true }));
    await feed(live, 0, at);
    const { meta, data } = await encodeAt(live.state, at);
    const fromSnapshot = new Driver(await decodeSnapshot(meta, data, policy));
    // the runner's rebuild: every entry up to the committed one, one preview at the end
    const replayed = new Driver(new ShardState(SHARD, SHARDS, policy, { snapshots: true }));
    for (let i = 0; i < at; i++) await replayed.entry(events[i]!);
    await replayed.finishBatch();
    await feed(fromSnapshot, at, n);
    await feed(replayed, at, n);
    const tail = (d: Driver) => d.records.slice(d.records.length - fromSnapshot.records.length);
    expect(firstDifference(tail(replayed), fromSnapshot.records)).toBe(-1);
    expect(stateText(replayed.state) === stateText(fromSnapshot.state)).toBe(true);
  }, 300_000);

  it('refuses indicators re-fed only a recent window (their values would differ: test/features/indicator-rebase.test.ts)', async () => {
    const n = events.length;
    const at = Math.floor(n / 2 / BATCH) * BATCH;
    const live = new Driver(new ShardState(SHARD, SHARDS, policy, { snapshots: true }));
    await feed(live, 0, at);
    const s: ShardStateData = live.state.saveState();
    const window = 100; // candles, more than any indicator period (60)
    for (const m of s.pipeline.features.markets)
      for (const series of [m.m1, m.m5, m.h1])
        series.indicatorInputs = series.indicatorInputs.slice(-4 * window);
    await expect(ShardState.restore(s, policy)).rejects.toThrow(/candles closed, but its indicators keep/);
    const exact = new Driver(await ShardState.restore(live.state.saveState(), policy));
    const tail = live.records.length;
    await feed(live, at, n);
    await feed(exact, at, n);
    expect(firstDifference(exact.records, live.records.slice(tail))).toBe(-1);
  }, 300_000);
});

describe("a snapshot past the indicators' first rebase", () => {
  it('keeps the candles since the last rebase window only, and its restore goes on as the live state', async () => {
    // longer than the simulated day: 2,048 1 m candles are where the first rebase falls
    const minutes = 2 * REBASE_CANDLES + 240;
    const history = syntheticHistory({ seed: 9, accounts: 8, minutes, tickMs: 30_000 }).map(
      (e) => JSON.parse(JSON.stringify(e)) as CanonicalEvent,
    );
    const cut = history.findIndex((e) => e.ts >= T0 + (minutes - 120) * MIN);
    const live = new ShardState(SHARD, SHARDS, policy, { snapshots: true });
    for (const ev of history.slice(0, cut)) live.apply(ev);
    const { meta, data } = await encodeAt(live, cut);
    const restored = await decodeSnapshot(meta, data, policy);
    const markets = restored.saveState().pipeline.features.markets;
    expect(markets.length).toBe(2);
    for (const m of markets) {
      expect(m.m1.indicatorInputsFrom).toBe(REBASE_CANDLES);
      expect(m.m1.indicatorInputs.length / INPUT_WIDTH).toBe(m.m1.closedCount - REBASE_CANDLES);
      expect(m.m1.indicatorInputs.length / INPUT_WIDTH).toBeLessThan(2 * REBASE_CANDLES);
    }
    // all but the lapse hint, which a restore drops so that its first sweep rescans (see 'a restore' below)
    const held = (st: ShardState) => canon({ ...st.saveState(), nextLapseAt: 0 });
    expect(held(restored)).toBe(held(live));
    const kinds = new Set<string>();
    for (const ev of history.slice(cut)) {
      const a = live.apply(ev);
      const b = restored.apply(ev);
      expect(canon(b)).toBe(canon(a));
      kinds.add(a.kind);
    }
    expect(kinds.has('applied')).toBe(true);
    expect(held(restored)).toBe(held(live));
  }, 120_000);
});

describe('snapshot metadata', () => {
  it('is refused for another version, shard, shard count, policy or feature parameters', async () => {
    const state = new ShardState(SHARD, SHARDS, policy, { snapshots: true });
    for (const ev of events.slice(0, 500)) state.apply(ev);
    const { meta, data } = await encodeAt(state, 5);
    const want = { shard: SHARD, shards: SHARDS, policyHash: policyHash(policy) };
    expect(refusal(meta, want)).toBeUndefined();
    expect(meta.version).toBe(SNAPSHOT_VERSION);
    expect(refusal({ ...meta, version: SNAPSHOT_VERSION + 1 }, want)).toMatch(/format/);
    // the versions before (every candle kept; before them the id memory's frontier and window) are still
    // read; evaluators of those versions refuse this one
    expect(refusal({ ...meta, version: 1 }, want)).toBeUndefined();
    expect(refusal({ ...meta, version: 2 }, want)).toBeUndefined();
    expect(refusal({ ...meta, version: 0 }, want)).toMatch(/format/);
    expect(refusal({ ...meta, format: 'other' }, want)).toMatch(/format/);
    expect(refusal(meta, { ...want, shard: 1 })).toMatch(/shard 0, not 1/);
    expect(refusal(meta, { ...want, shards: 4 })).toMatch(/2 shards, now 4/);
    const other = policyHash(resolvePolicyConfig({ pdReduce: 0.05 }));
    expect(other).not.toBe(want.policyHash);
    expect(refusal(meta, { ...want, policyHash: other })).toMatch(/policy/);
    expect(refusal({ ...meta, paramsHash: 'x' }, want)).toMatch(/feature parameters/);
    expect(refusal(undefined, want)).toBe('no snapshot');
    // a corrupted payload does not decode (gzip's CRC)
    const bad = Buffer.from(data);
    bad[bad.length - 6]! ^= 0xff;
    await expect(decodeSnapshot(meta, bad, policy)).rejects.toThrow();
    // a payload of another shard is refused whatever its metadata says
    const raw = gzipSync(serialize({ ...(await decodeSnapshot(meta, data, policy)).saveState(), shard: 1 }));
    await expect(decodeSnapshot(meta, raw, policy)).rejects.toThrow(/shard 1/);
    expect(gunzipSync(data).length).toBe(meta.rawBytes);
    expect(FEATURE_COUNT).toBeGreaterThan(0);
  });
});

describe('a restore', () => {
  it('rescans restricted flat accounts at its first sweep: a shorter hold (policy change) lapses at once', async () => {
    const live = new Driver(new ShardState(SHARD, SHARDS, policy, { snapshots: true }));
    // feed until some restricted account is flat and held (its lapse in the future)
    let i = 0;
    let held: string | undefined;
    while (i < events.length && held === undefined) {
      const to = Math.min(events.length, i + BATCH);
      await feed(live, i, to);
      i = to;
      for (const [a, r] of live.state.restrictionStates()) {
        const v = live.state.restrictionOf(a);
        if (r.reduceOnly && v.until !== null && v.until > live.state.clock + 60_000) held = a;
      }
    }
    expect(held).toBeDefined();
    const shorter = resolvePolicyConfig({ reduceOnlyHoldMs: 1000 });
    // the hint saved under the old policy says no hold lapses before `until`: kept, the sweep finds nothing
    const saved = live.state.saveState();
    const hinted = await ShardState.restore(saved, shorter);
    (hinted as unknown as { nextLapseAt: number }).nextLapseAt = saved.nextLapseAt;
    expect(hinted.sweep(live.state.clock).map((c) => c.account)).not.toContain(held);
    // restored: the first sweep rescans, and the hold, now 1 s, has lapsed
    const restored = await ShardState.restore(saved, shorter);
    const lifted = restored.sweep(live.state.clock);
    expect(lifted.map((c) => c.account)).toContain(held);
    expect(restored.isRestricted(held!)).toBe(false);
  }, 120_000);

  it('yields to the event loop while it re-feeds candles and re-adds ids (timers run during it)', async () => {
    const live = new Driver(new ShardState(SHARD, SHARDS, policy, { snapshots: true }));
    await feed(live, 0, Math.floor(events.length / 2));
    const saved = live.state.saveState();
    const candles = saved.pipeline.features.markets.reduce(
      (n, m) =>
        n + (m.m1.indicatorInputs.length + m.m5.indicatorInputs.length + m.h1.indicatorInputs.length) / 4,
      0,
    );
    expect(candles).toBeGreaterThan(1000);
    const loop = loopTurns();
    const pace = new Pacer(256);
    const restored = await ShardState.restore(saved, policy, pace);
    loop.stop();
    expect(pace.yields).toBeGreaterThanOrEqual(Math.floor(candles / 256));
    // interleaved callbacks: the loop ran between chunks (a synchronous restore would give 0)
    expect(loop.turns).toBeGreaterThanOrEqual(pace.yields - 1);
    expect(loop.turns).toBeGreaterThan(2);
    expect(stateText(restored)).toBe(stateText(await ShardState.restore(saved, policy)));
  }, 120_000);
});

describe('the snapshot payload', () => {
  it('is serialised and deserialised in chunks, a turn of the event loop between them, and reads the first format', async () => {
    const state = new ShardState(SHARD, SHARDS, policy, { snapshots: true });
    for (const ev of events.slice(0, 5000)) state.apply(ev);
    const saved = state.saveState();
    // (the simulated events carry no ids: some, as the log's events do)
    saved.pipeline.gate.seenIds = Array.from({ length: 5000 }, (_, i) => `ev-${i}`);
    delete saved.pipeline.gate.idMemory;
    const ids = saved.pipeline.gate.seenIds.length;
    const loop = loopTurns();
    const raw = await serialiseState(structuredClone(saved), 100);
    const whileWriting = loop.turns;
    const back = await deserialiseState(raw);
    loop.stop();
    // one turn per chunk of 100 ids at least, each way (a single synchronous call would give none)
    expect(whileWriting).toBeGreaterThanOrEqual(Math.floor(ids / 100) - 1);
    expect(loop.turns - whileWriting).toBeGreaterThanOrEqual(Math.floor(ids / 100) - 1);
    expect(canon(back)).toBe(canon(saved));
    // a payload of the first format (one v8 serialisation) still reads
    expect(canon(await deserialiseState(serialize(saved)))).toBe(canon(saved));
    // a truncated one does not
    await expect(deserialiseState(raw.subarray(0, raw.length - 3))).rejects.toThrow();
  }, 60_000);

  it('is decoded to its end under a control that never stops, and abandoned at the first yield after a stop', async () => {
    const state = new ShardState(SHARD, SHARDS, policy, { snapshots: true });
    for (const ev of events.slice(0, 5000)) state.apply(ev);
    const saved = state.saveState();
    // ids enough for the restore's pacer (every 4096) to yield after the chunks
    saved.pipeline.gate.seenIds = Array.from({ length: 10_000 }, (_, i) => `ev-${i}`);
    // ids without their generations: the first gate format, read as one list
    delete saved.pipeline.gate.idMemory;
    const raw = await serialiseState(structuredClone(saved), 100);
    const data = gzipSync(raw);
    const { meta } = await encodeAt(state, 5);
    const whole = stateText(await decodeSnapshot(meta, data, policy));
    /** a decode of `data` stopped once `stop` says so (never: to its end); every progress reported */
    const decode = (stop: (p: DecodeProgress) => boolean) => {
      const seen: DecodeProgress[] = [];
      const done = decodeSnapshot(meta, data, policy, {
        onYield: (p) => seen.push(p),
        isStopped: () => seen.length > 0 && stop(seen[seen.length - 1]!),
      });
      return { done, seen };
    };

    const full = decode(() => false);
    expect(stateText(await full.done)).toBe(whole);
    const end = full.seen[full.seen.length - 1]!;
    expect(end.chunksTotal).toBeGreaterThanOrEqual(100);
    expect(end.chunks).toBe(end.chunksTotal);
    // the pacer's yields (ids re-added) come after the chunks'
    expect(end.yields).toBeGreaterThanOrEqual(end.chunksTotal + 2);

    // between chunks: stopped at the third yield, two chunks read
    const early = decode((p) => p.yields >= 3);
    await expect(early.done).rejects.toThrow(DecodeStoppedError);
    await early.done.catch((e: DecodeStoppedError) =>
      expect(e.progress).toEqual({ yields: 3, chunks: 2, chunksTotal: end.chunksTotal }),
    );
    expect(early.seen).toHaveLength(3);
    // while the ids are re-added (after every chunk): stopped at the pacer's first yield
    const late = decode((p) => p.yields > p.chunksTotal);
    await expect(late.done).rejects.toThrow(DecodeStoppedError);
    expect(late.seen).toHaveLength(end.chunksTotal + 1);
    expect(late.seen[late.seen.length - 1]!.chunks).toBe(end.chunksTotal);
  }, 60_000);

  it('is not decompressed once its caller stopped before the decode began', async () => {
    const state = new ShardState(SHARD, SHARDS, policy, { snapshots: true });
    for (const ev of events.slice(0, 100)) state.apply(ev);
    const { meta, data } = await encodeAt(state, 1);
    // not gzip: decompressing it throws (so a decode that got that far would reject with gunzip's error)
    const notGzip = Buffer.from('not a gzip stream, never decompressed');
    await expect(decodeSnapshot(meta, notGzip, policy)).rejects.toThrow(/incorrect header check/);
    /** a decode of `payload` under a control stopped from the start: its checks and yields counted */
    const stoppedDecode = async (payload: Buffer) => {
      let checks = 0;
      const yields: DecodeProgress[] = [];
      const error = await decodeSnapshot(meta, payload, policy, {
        isStopped: () => {
          checks++;
          return true;
        },
        onYield: (p) => yields.push(p),
      }).then(
        () => undefined,
        (e: unknown) => e,
      );
      return { error, checks, yields };
    };
    // the stop is seen before the payload is touched: the rejection is the stop, not gunzip's error
    for (const payload of [notGzip, data]) {
      const r = await stoppedDecode(payload);
      expect(r.error).toBeInstanceOf(DecodeStoppedError);
      expect((r.error as DecodeStoppedError).progress).toEqual({ yields: 0, chunks: 0, chunksTotal: 0 });
      expect(r.checks).toBe(1);
      expect(r.yields).toEqual([]);
    }
  });
});
