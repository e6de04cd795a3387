/**
 * Margin figures of many accounts at once, for feature rows: the mirrored inputs are laid out as the margin
 * core's `MarginBatch` and evaluated by its `evaluateBatch` (equity, MM, IM, uPnL, margin ratio); each
 * position's liquidation price comes from the core's `liquidationPrice` with the same inputs the object
 * path (`evaluateAccount`) gives it (`otherMm = MM - notional * tier mmr`, tier by `tierIndexOf`). The
 * result equals `MarginBook.snapshot` for every account (tested), at a fraction of the cost.
 * Buffers are reused across sweeps.
 */
import {
  allocateBatchOutput,
  type BatchOutput,
  evaluateBatch,
  type InstrumentTable,
  instrumentTable,
  liquidationPrice,
  type MarginBatch,
  type MarginBook,
  notionalOf,
  type Tier,
  tierIndexOf,
} from '../margin/index.js';
import { type MirrorArrays, SLOTS } from './margin-mirror.js';

/** The instrument side of a sweep, built once per snapshot from the margin core (plain, cloneable data). */
export interface MarginInputs {
  /** the core's instrument table (marks, contract sizes, tiers, dynamic-margin terms) */
  table: InstrumentTable;
  /** tiers by table index (for liquidation prices) */
  tiers: (readonly Tier[])[];
  /** table index of each of the pipeline's instrument indexes */
  toTable: Int32Array;
}

/** `symbols[k]`: the symbol of the pipeline's instrument index k. */
export function marginInputs(book: MarginBook, symbols: readonly string[]): MarginInputs {
  const specs = book.instrumentSymbols().map((s) => book.instrument(s)!);
  const table = instrumentTable(
    specs,
    (s) => book.markOf(s),
    (s) => book.dynamicTermOf(s),
  );
  return {
    table,
    tiers: specs.map((s) => s.tiers),
    toTable: Int32Array.from(symbols, (s) => table.index.get(s) ?? -1),
  };
}

export class MarginSweep {
  rows = 0;
  /** per row: 1 when the margin core knows the account */
  known = new Uint8Array(0);
  /** per row, USD: sum of position notionals in the core's order */
  notional = new Float64Array(0);
  /** per row: equity, upnl, mm, im (USD), marginRatio (+Infinity without position) */
  out: BatchOutput = allocateBatchOutput(0);
  /** positions of row r: [posStart[r], posStart[r + 1]) */
  posStart: Uint32Array = new Uint32Array(1);
  /** per position: the pipeline's instrument index */
  posInst = new Int32Array(0);
  posQty = new Float64Array(0); // contracts, signed
  posMark = new Float64Array(0); // USD
  posNotional = new Float64Array(0); // USD
  /** USD; NaN when the core reports no liquidation price (or the account is already below MM) */
  posLiq = new Float64Array(0);
  private batch: MarginBatch | undefined;

  /**
   * Evaluate `rows` accounts: row r is account `rowsIdx[from + r]`, or `from + r` when `rowsIdx` is null.
   */
  run(inputs: MarginInputs, mirror: MirrorArrays, rows: number, rowsIdx: Int32Array | null, from = 0): void {
    const { table, toTable } = inputs;
    let total = 0;
    const count = mirror.count;
    if (rowsIdx) for (let r = 0; r < rows; r++) total += count[rowsIdx[from + r]!]!;
    else for (let r = 0; r < rows; r++) total += count[from + r]!;
    this.reserve(rows, total);
    const b = this.batch!;
    b.instruments = table;
    let k = 0;
    for (let r = 0; r < rows; r++) {
      const i = rowsIdx ? rowsIdx[from + r]! : from + r;
      this.known[r] = mirror.known[i]!;
      b.cash[r] = mirror.cash[i]!;
      b.posStart[r] = k;
      const n = mirror.count[i]!;
      if (n > SLOTS) {
        for (const p of mirror.overflow.get(i)!) {
          this.posInst[k] = p.inst;
          b.posInstrument[k] = toTable[p.inst]!;
          b.posQty[k] = p.qty;
          b.posEntry[k++] = p.entry;
        }
      } else {
        const o = i * SLOTS;
        for (let j = 0; j < n; j++) {
          const inst = mirror.inst[o + j]!;
          this.posInst[k] = inst;
          b.posInstrument[k] = toTable[inst]!;
          b.posQty[k] = mirror.qty[o + j]!;
          b.posEntry[k++] = mirror.entry[o + j]!;
        }
      }
    }
    b.posStart[rows] = k;
    this.rows = rows;
    evaluateBatch(b, this.out, 0, rows);
    this.positionFigures(inputs.tiers, table.contractSize, table.mark);
  }

  /** One row for an account the margin core has never seen (no cash, no position). */
  runUnknown(): void {
    this.reserve(1, 0);
    this.rows = 1;
    this.known[0] = 0;
    this.posStart[0] = 0;
    this.posStart[1] = 0;
    this.notional[0] = 0;
  }

  /** Notional and liquidation price per position, notional per row (the object path's order). */
  private positionFigures(
    tiersOf: readonly (readonly Tier[])[],
    contractSize: Float64Array,
    mark: Float64Array,
  ): void {
    const b = this.batch!;
    const { equity, mm } = this.out;
    for (let r = 0; r < this.rows; r++) {
      const end = b.posStart[r + 1]!;
      const eq = equity[r]!;
      const below = eq < mm[r]!;
      let notional = 0;
      for (let k = b.posStart[r]!; k < end; k++) {
        const ti = b.posInstrument[k]!;
        const c = contractSize[ti]!;
        const m = mark[ti]!;
        const q = b.posQty[k]!;
        const n = notionalOf(q, c, m);
        notional += n;
        this.posQty[k] = q;
        this.posMark[k] = m;
        this.posNotional[k] = n;
        if (below) {
          this.posLiq[k] = Number.NaN;
          continue;
        }
        const tiers = tiersOf[ti]!;
        const otherMm = mm[r]! - n * tiers[tierIndexOf(tiers, n)]!.mmr;
        const lp = liquidationPrice({ qty: q, mark: m, contractSize: c, tiers, equity: eq, otherMm });
        this.posLiq[k] = lp === null ? Number.NaN : lp;
      }
      this.notional[r] = notional;
    }
  }

  private reserve(rows: number, positions: number): void {
    if (!this.batch || this.known.length < rows) {
      const cap = Math.max(rows, 16);
      this.known = new Uint8Array(cap);
      this.notional = new Float64Array(cap);
      this.out = allocateBatchOutput(cap);
      this.batch = {
        instruments: this.batch?.instruments ?? instrumentTable([], () => undefined),
        accountIds: [],
        cash: new Float64Array(cap),
        posStart: new Uint32Array(cap + 1),
        posInstrument: this.batch?.posInstrument ?? new Uint32Array(0),
        posQty: this.batch?.posQty ?? new Float64Array(0),
        posEntry: this.batch?.posEntry ?? new Float64Array(0),
      };
      this.posStart = this.batch.posStart;
    }
    if (this.posInst.length < positions) {
      const cap = Math.max(positions, 16);
      const b = this.batch;
      b.posInstrument = new Uint32Array(cap);
      b.posQty = new Float64Array(cap);
      b.posEntry = new Float64Array(cap);
      this.posInst = new Int32Array(cap);
      this.posQty = new Float64Array(cap);
      this.posMark = new Float64Array(cap);
      this.posNotional = new Float64Array(cap);
      this.posLiq = new Float64Array(cap);
    }
  }
}
