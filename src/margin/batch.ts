/**
 * The fast path: a struct-of-arrays (typed-array) evaluator for many accounts at once. It calls the same
 * arithmetic (`upnlOf`, `notionalOf`, tier rule, `effectiveImr`, `marginRatioOf`) in the same order as
 * `evaluateAccount`, so its equity / MM / IM / uPnL / margin ratio equal the object path's bit for bit.
 * Liquidation prices are left to the object path (they are needed per account, not per sweep).
 */
import { marginRatioOf, notionalOf, upnlOf } from './arithmetic.js';
import { effectiveImr } from './dynamic-margin.js';
import { MarginRuleError } from './errors.js';
import type { MarginBook } from './margin-book.js';
import { tierIndexInTable, tierMax } from './tiers.js';
import type { InstrumentSpec } from './types.js';

/** Instruments as flat arrays; tiers of instrument i are `tier*[tierStart[i] .. tierStart[i]+tierCount[i])`. */
export interface InstrumentTable {
  symbols: string[];
  index: Map<string, number>;
  contractSize: Float64Array;
  /** USD; NaN when unknown */
  mark: Float64Array;
  /** dynamic-margin term per instrument (NaN = add-on off) */
  dynTerm: Float64Array;
  tierStart: Uint32Array;
  tierCount: Uint32Array;
  /** USD; +Infinity for an unbounded tier */
  tierMax: Float64Array;
  tierImr: Float64Array;
  tierMmr: Float64Array;
}

/** Accounts as flat arrays; the positions of account a are `pos*[posStart[a] .. posStart[a+1])`. */
export interface MarginBatch {
  instruments: InstrumentTable;
  accountIds: string[];
  cash: Float64Array; // USD
  posStart: Uint32Array;
  posInstrument: Uint32Array;
  posQty: Float64Array; // contracts, signed
  posEntry: Float64Array; // USD
}

export interface BatchOutput {
  equity: Float64Array; // USD
  upnl: Float64Array; // USD
  mm: Float64Array; // USD
  im: Float64Array; // USD
  marginRatio: Float64Array; // +Infinity without position
  /** 1 when equity < MM (the venue liquidates) */
  liquidatable: Uint8Array;
}

export function instrumentTable(
  specs: readonly InstrumentSpec[],
  markOf: (symbol: string) => number | undefined,
  dynTermOf: (symbol: string) => number = () => Number.NaN,
): InstrumentTable {
  const n = specs.length;
  const tierTotal = specs.reduce((a, s) => a + s.tiers.length, 0);
  const t: InstrumentTable = {
    symbols: specs.map((s) => s.symbol),
    index: new Map(specs.map((s, i) => [s.symbol, i])),
    contractSize: new Float64Array(n),
    mark: new Float64Array(n),
    dynTerm: new Float64Array(n),
    tierStart: new Uint32Array(n),
    tierCount: new Uint32Array(n),
    tierMax: new Float64Array(tierTotal),
    tierImr: new Float64Array(tierTotal),
    tierMmr: new Float64Array(tierTotal),
  };
  let k = 0;
  specs.forEach((s, i) => {
    t.contractSize[i] = s.contractSize;
    t.mark[i] = markOf(s.symbol) ?? Number.NaN;
    t.dynTerm[i] = dynTermOf(s.symbol);
    t.tierStart[i] = k;
    t.tierCount[i] = s.tiers.length;
    for (const tier of s.tiers) {
      t.tierMax[k] = tierMax(tier);
      t.tierImr[k] = tier.imr;
      t.tierMmr[k] = tier.mmr;
      k++;
    }
  });
  return t;
}

/** Snapshot a MarginBook into a batch (accounts in `book.accountIds()` order, positions in book order). */
export function batchFromBook(book: MarginBook): MarginBatch {
  const specs = book.instrumentSymbols().map((s) => book.instrument(s)!);
  const instruments = instrumentTable(
    specs,
    (s) => book.markOf(s),
    (s) => book.dynamicTermOf(s),
  );
  const accountIds = book.accountIds();
  const perAccount = accountIds.map((id) => book.positionsOf(id));
  const total = perAccount.reduce((a, p) => a + p.length, 0);
  const batch: MarginBatch = {
    instruments,
    accountIds,
    cash: new Float64Array(accountIds.length),
    posStart: new Uint32Array(accountIds.length + 1),
    posInstrument: new Uint32Array(total),
    posQty: new Float64Array(total),
    posEntry: new Float64Array(total),
  };
  let k = 0;
  accountIds.forEach((id, a) => {
    batch.cash[a] = book.snapshot(id, { prices: false })!.cash;
    batch.posStart[a] = k;
    for (const p of perAccount[a]!) {
      batch.posInstrument[k] = instruments.index.get(p.symbol)!;
      batch.posQty[k] = p.qty;
      batch.posEntry[k] = p.avgEntry;
      k++;
    }
  });
  batch.posStart[accountIds.length] = k;
  return batch;
}

export function allocateBatchOutput(accounts: number): BatchOutput {
  return {
    equity: new Float64Array(accounts),
    upnl: new Float64Array(accounts),
    mm: new Float64Array(accounts),
    im: new Float64Array(accounts),
    marginRatio: new Float64Array(accounts),
    liquidatable: new Uint8Array(accounts),
  };
}

/** Set a symbol's mark in the batch's instrument table (USD > 0). */
export function setBatchMark(batch: MarginBatch, symbol: string, price: number): void {
  const i = batch.instruments.index.get(symbol);
  if (i === undefined)
    throw new MarginRuleError('UNDECLARED_INSTRUMENT', `no instrument "${symbol}"`, 'symbol');
  if (!(Number.isFinite(price) && price > 0))
    throw new MarginRuleError('NON_FINITE', 'mark must be finite and > 0');
  batch.instruments.mark[i] = price;
}

/** Evaluate accounts `[from, to)` into `out` (allocated when omitted). Returns `out`. */
export function evaluateBatch(
  batch: MarginBatch,
  out: BatchOutput = allocateBatchOutput(batch.cash.length),
  from = 0,
  to = batch.cash.length,
): BatchOutput {
  const {
    contractSize,
    mark,
    dynTerm,
    tierStart,
    tierCount,
    tierMax: tmax,
    tierImr,
    tierMmr,
  } = batch.instruments;
  const { cash, posStart, posInstrument, posQty, posEntry } = batch;
  for (let a = from; a < to; a++) {
    let upnl = 0;
    let mm = 0;
    let im = 0;
    const end = posStart[a + 1]!;
    for (let k = posStart[a]!; k < end; k++) {
      const i = posInstrument[k]!;
      const c = contractSize[i]!;
      const m = mark[i]!;
      const q = posQty[k]!;
      const n = notionalOf(q, c, m);
      const t = tierStart[i]! + tierIndexInTable(tmax, tierStart[i]!, tierCount[i]!, n);
      const mmr = tierMmr[t]!;
      upnl += upnlOf(q, posEntry[k]!, c, m);
      mm += n * mmr;
      im += n * effectiveImr(tierImr[t]!, mmr, dynTerm[i]!);
    }
    const equity = cash[a]! + upnl;
    out.equity[a] = equity;
    out.upnl[a] = upnl;
    out.mm[a] = mm;
    out.im[a] = im;
    out.marginRatio[a] = marginRatioOf(equity, mm);
    out.liquidatable[a] = equity < mm ? 1 : 0;
  }
  return out;
}
