/**
 * The waterfall's ledger: every transfer of value, valued against the mark, between accounts, the
 * insurance fund, the market (the outside counterparty of a liquidation fill) and the socialised-loss
 * pool. Amounts are >= 0 (the direction is from -> to). A conservation report checks that the book's
 * value plus what went to the market is unchanged.
 */
import type { MarginBook } from './margin-book.js';

export type Party = `account:${string}` | 'insurance' | 'market' | 'socialised';

export type LedgerKind =
  /** a liquidation fill's price against the mark (slippage) */
  | 'liquidation-slippage'
  /** the liquidation penalty, into the insurance fund */
  | 'liquidation-fee'
  /** ADL: the counterparty closes at the bankruptcy price instead of the mark */
  | 'adl-transfer'
  /** the insurance fund covers a bankruptcy deficit */
  | 'insurance-cover'
  /** a deficit nobody covered: written off */
  | 'socialised-loss';

export interface LedgerEntry {
  seq: number;
  ts: number; // ms
  kind: LedgerKind;
  from: Party;
  to: Party;
  amount: number; // USD >= 0
  symbol?: string;
  qty?: number; // contracts
  price?: number; // USD
}

export class Ledger {
  readonly entries: LedgerEntry[] = [];

  /** Records a signed transfer (negative amounts swap from and to; zero is not recorded). */
  add(e: Omit<LedgerEntry, 'seq'>): void {
    if (e.amount === 0) return;
    const entry = e.amount > 0 ? e : { ...e, from: e.to, to: e.from, amount: -e.amount };
    this.entries.push({ seq: this.entries.length, ...entry });
  }
}

/** USD net received by each party (inflows - outflows). */
export function ledgerBalances(entries: readonly LedgerEntry[]): Map<Party, number> {
  const net = new Map<Party, number>();
  for (const e of entries) {
    net.set(e.from, (net.get(e.from) ?? 0) - e.amount);
    net.set(e.to, (net.get(e.to) ?? 0) + e.amount);
  }
  return net;
}

/**
 * USD value held inside the book: traders' equity at the marks + insurance fund + fees collected, minus
 * the socialised loss (value written off, which is why it enters with a minus sign).
 */
export function bookValue(book: MarginBook): number {
  let v = 0;
  for (const id of book.accountIds()) v += book.snapshot(id, { prices: false })!.equity;
  const f = book.venueFunds();
  return v + f.insuranceFund + f.feesCollected - f.socialisedLoss;
}

export interface ConservationReport {
  before: number; // USD book value
  after: number; // USD book value
  /** USD the market received per the ledger */
  toMarket: number;
  /** USD: after + toMarket - before; 0 up to float rounding */
  residual: number;
  /** accounts whose equity change differs from their ledger net by more than the tolerance */
  accountMismatches: Array<{ account: string; equityChange: number; ledgerNet: number }>;
  ok: boolean;
}

/** Compares two states of the book around a waterfall with the ledger it produced. */
export function conservationReport(
  before: MarginBook,
  after: MarginBook,
  entries: readonly LedgerEntry[],
  toleranceUsd = 1e-6,
): ConservationReport {
  const net = ledgerBalances(entries);
  const b = bookValue(before);
  const a = bookValue(after);
  const toMarket = net.get('market') ?? 0;
  const accountMismatches: ConservationReport['accountMismatches'] = [];
  const ids = new Set([...before.accountIds(), ...after.accountIds()]);
  for (const id of ids) {
    const e0 = before.snapshot(id, { prices: false })?.equity ?? 0;
    const e1 = after.snapshot(id, { prices: false })?.equity ?? 0;
    const ledgerNet = net.get(`account:${id}`) ?? 0;
    const scale = Math.max(1, Math.abs(e0), Math.abs(e1));
    if (Math.abs(e1 - e0 - ledgerNet) > toleranceUsd * scale)
      accountMismatches.push({ account: id, equityChange: e1 - e0, ledgerNet });
  }
  const residual = a + toMarket - b;
  const scale = Math.max(1, Math.abs(a), Math.abs(b));
  return {
    before: b,
    after: a,
    toMarket,
    residual,
    accountMismatches,
    ok: Math.abs(residual) <= toleranceUsd * scale && accountMismatches.length === 0,
  };
}
