/**
 * The auto-deleveraging queue (BitMEX's ranking): on the side opposite a bankrupt position, profitable
 * accounts ranked by `PnL% x effective leverage`, where PnL% = position uPnL / |entry value| and effective
 * leverage = account notional / account equity (cross margin). Ties go to the account id, so the queue is
 * deterministic.
 */
import type { MarginBook } from './margin-book.js';

export interface AdlCandidate {
  account: string;
  /** contracts, signed: the candidate's position on the symbol */
  qty: number;
  /** fraction: uPnL / |qty * contractSize * avgEntry| */
  pnlPct: number;
  /** account notional / equity */
  effectiveLeverage: number;
  rank: number;
}

/**
 * Candidates on `symbol` holding the side opposite `bankruptSign` (+1 long, -1 short), profitable at the
 * mark and with positive equity, best rank first.
 */
export function adlQueue(
  book: MarginBook,
  symbol: string,
  bankruptSign: 1 | -1,
  exclude: string,
): AdlCandidate[] {
  const out: AdlCandidate[] = [];
  for (const id of book.accountsHolding(symbol)) {
    if (id === exclude) continue;
    const snap = book.snapshot(id, { prices: false });
    if (!snap || !(snap.equity > 0)) continue;
    const pos = snap.positions.find((p) => p.symbol === symbol);
    if (!pos || Math.sign(pos.qty) !== -bankruptSign || !(pos.upnl > 0)) continue;
    const cost = (pos.notional / pos.mark) * pos.avgEntry;
    const pnlPct = pos.upnl / cost;
    const effectiveLeverage = snap.notional / snap.equity;
    out.push({ account: id, qty: pos.qty, pnlPct, effectiveLeverage, rank: pnlPct * effectiveLeverage });
  }
  out.sort((a, b) => b.rank - a.rank || (a.account < b.account ? -1 : a.account > b.account ? 1 : 0));
  return out;
}
