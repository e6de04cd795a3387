/**
 * Turning intents into canonical events against the simulated book: market orders (an `order` then a
 * taker `fill` at the depth-walked price, opening orders scaled down until the account meets its initial
 * margin as venues require, and to the leverage cap the risk engine set on it, if any), limit orders resting
 * until the mark crosses them (maker fills), cancels, deposits, withdrawals (only what is free above IM), and
 * the risk engine's reductions (`preempt-` order ids). Margin figures come from the margin core (snapshot,
 * tier lookup); nothing is recomputed here.
 */
import { type AccountMargin, effectiveImr, notionalOf, tierIndexOf } from '../../margin/index.js';
import { executionPrice, roundToTick } from '../market/microstructure.js';
import { roundLot } from '../traders/intents.js';
import type { Intent, Trader } from '../traders/types.js';
import { type EarlyReduction, PREEMPT_ORDER_PREFIX } from './types.js';
import type { Venue } from './venue.js';

const fee6 = (x: number): number => Math.round(x * 1e6) / 1e6;

/** USD: the account's IM if its position on `symbol` changed by `delta` contracts (at the mark). */
function imAfter(v: Venue, snap: AccountMargin, symbol: string, delta: number, mark: number): number {
  const spec = v.book.instrument(symbol)!;
  const pos = snap.positions.find((p) => p.symbol === symbol);
  const n1 = notionalOf((pos?.qty ?? 0) + delta, spec.contractSize, mark);
  const tier = spec.tiers[tierIndexOf(spec.tiers, n1)]!;
  return snap.im - (pos?.im ?? 0) + n1 * effectiveImr(tier.imr, tier.mmr, v.book.dynamicTermOf(symbol));
}

function increases(snap: AccountMargin, symbol: string, delta: number): boolean {
  const q0 = snap.positions.find((p) => p.symbol === symbol)?.qty ?? 0;
  return Math.abs(q0 + delta) > Math.abs(q0);
}

/** A restricted (reduce-only) account's order that would increase its position: refused and counted. */
function refused(
  v: Venue,
  t: Trader,
  snap: AccountMargin,
  symbol: string,
  delta: number,
  mark: number,
): boolean {
  if (!v.reduceOnly.has(t.index) || !increases(snap, symbol, delta)) return false;
  const c = v.book.instrument(symbol)!.contractSize;
  v.stats.reduceOnly.rejectedOrders++;
  v.stats.reduceOnly.rejectedNotional += Math.abs(delta) * c * mark;
  return true;
}

/**
 * Contracts: the largest order in direction `sign` on `symbol` that keeps a capped account's notional at or
 * under its leverage cap x equity (at the mark, before fees); +Infinity for an account without a cap.
 */
function capRoom(
  v: Venue,
  t: Trader,
  snap: AccountMargin,
  symbol: string,
  sign: number,
  mark: number,
): number {
  const cap = v.leverageCaps.get(t.index);
  if (cap === undefined) return Number.POSITIVE_INFINITY;
  const c = v.book.instrument(symbol)!.contractSize;
  const q0 = snap.positions.find((p) => p.symbol === symbol)?.qty ?? 0;
  const others = snap.notional - Math.abs(q0) * c * mark; // USD: the account's other positions
  const maxAbsQty = Math.max(0, (cap * snap.equity - others) / (c * mark));
  // against the position, the first |q0| contracts only close it
  return Math.sign(q0) === -sign ? Math.abs(q0) + maxAbsQty : Math.max(0, maxAbsQty - Math.abs(q0));
}

function marketOrder(v: Venue, t: Trader, it: Extract<Intent, { kind: 'market' }>, ts: number): void {
  const s = v.market.symbols[it.symbol]!;
  const symbol = s.config.symbol;
  const c = s.config.contractSize;
  const shape = v.shapes[it.symbol]!;
  const used = v.consumed[it.symbol]!;
  const snap = v.book.snapshot(t.id, { prices: false });
  if (!snap) return;
  const pos = snap.positions.find((p) => p.symbol === symbol);
  let qty = it.qty;
  if (it.reduceOnly) {
    if (!pos || pos.qty > 0 === (it.side === 'buy')) return;
    qty = Math.min(qty, Math.abs(pos.qty));
  }
  const sign = it.side === 'buy' ? 1 : -1;
  const mark = v.currentMark[it.symbol]!;
  if (!it.reduceOnly && refused(v, t, snap, symbol, sign * qty, mark)) return;
  if (!it.reduceOnly && increases(snap, symbol, sign * qty)) {
    const room = capRoom(v, t, snap, symbol, sign, mark);
    if (qty > room) {
      // the venue's leverage cap, the way a trader's "max" button sizes under it
      const allowed = roundLot(room, s.config.lotSize);
      v.stats.leverageCap.cutOrders++;
      v.stats.leverageCap.cutNotional += (qty - allowed) * c * mark;
      qty = allowed;
      if (!(qty > 0)) return;
    }
  }
  let price = executionPrice(it.side, qty, shape, used, s.config.tickSize, false);
  if (!it.reduceOnly && increases(snap, symbol, sign * qty)) {
    // the venue's initial-margin check, the way a trader's "max" button sizes: halve until it passes
    for (let k = 0; k < 12 && qty > 0; k++) {
      price = executionPrice(it.side, qty, shape, used, s.config.tickSize, false);
      const cost = v.fees.taker * qty * c * price + Math.max(0, (price - mark) * sign) * qty * c;
      if (snap.equity - cost >= imAfter(v, snap, symbol, sign * qty, mark)) break;
      qty = roundLot(qty / 2, s.config.lotSize);
    }
    if (
      !(qty > 0) ||
      snap.equity - v.fees.taker * qty * c * price < imAfter(v, snap, symbol, sign * qty, mark)
    )
      return;
  }
  if (!(qty > 0)) return;
  price = executionPrice(it.side, qty, shape, used, s.config.tickSize, true);
  const orderId = t.nextOrderId();
  v.emit({
    type: 'order',
    ts,
    account: t.id,
    orderId,
    symbol,
    side: it.side,
    qty,
    price: null,
    reduceOnly: it.reduceOnly,
  });
  v.emit({
    type: 'fill',
    ts,
    account: t.id,
    symbol,
    side: it.side,
    qty,
    price,
    fee: fee6(v.fees.taker * qty * c * price),
    liquidity: 'taker',
    orderId,
  });
  v.recordFlow(it.symbol, it.side, qty, price);
}

function limitOrder(v: Venue, t: Trader, it: Extract<Intent, { kind: 'limit' }>, ts: number): void {
  const s = v.market.symbols[it.symbol]!;
  const symbol = s.config.symbol;
  const shape = v.shapes[it.symbol]!;
  let price = roundToTick(it.price, s.config.tickSize);
  // post-only: a limit that would cross rests at the touch instead
  if (it.side === 'buy' && price >= shape.ask) price = shape.bid;
  if (it.side === 'sell' && price <= shape.bid) price = shape.ask;
  if (!(price > 0) || !(it.qty > 0)) return;
  const snap = v.book.snapshot(t.id, { prices: false });
  if (!snap) return;
  const delta = (it.side === 'buy' ? 1 : -1) * it.qty;
  const mark = v.currentMark[it.symbol]!;
  if (refused(v, t, snap, symbol, delta, mark)) return;
  const opening = increases(snap, symbol, delta);
  if (opening && snap.equity < imAfter(v, snap, symbol, delta, mark)) return;
  if (opening && it.qty > capRoom(v, t, snap, symbol, Math.sign(delta), mark)) {
    v.stats.leverageCap.cutOrders++;
    v.stats.leverageCap.cutNotional += it.qty * s.config.contractSize * mark;
    return;
  }
  const orderId = t.nextOrderId();
  v.emit({
    type: 'order',
    ts,
    account: t.id,
    orderId,
    symbol,
    side: it.side,
    qty: it.qty,
    price,
    reduceOnly: false,
  });
  const order = { orderId, symbol: it.symbol, side: it.side, qty: it.qty, price, placedAt: v.minute };
  t.resting.set(orderId, order);
  v.resting[it.symbol]!.set(orderId, { ...order, trader: t.index });
}

export function cancelOrder(v: Venue, t: Trader, orderId: string, ts: number): void {
  const o = t.resting.get(orderId);
  if (!o) return;
  t.resting.delete(orderId);
  v.resting[o.symbol]!.delete(orderId);
  v.emit({ type: 'cancel', ts, account: t.id, orderId });
}

function withdraw(v: Venue, t: Trader, amount: number, ts: number): void {
  const snap = v.book.snapshot(t.id, { prices: false });
  if (!snap) return;
  const free = Math.min(snap.cash, snap.equity - snap.im);
  const a = Math.floor(Math.min(amount, free) * 100) / 100;
  if (!(a >= 0.01)) return;
  v.emit({ type: 'withdrawal', ts, account: t.id, amount: a });
  t.reserve += a;
}

export function executeIntents(v: Venue, t: Trader, intents: readonly Intent[], ts: number): void {
  for (const it of intents) {
    switch (it.kind) {
      case 'market':
        marketOrder(v, t, it, ts);
        break;
      case 'limit':
        limitOrder(v, t, it, ts);
        break;
      case 'cancel':
        cancelOrder(v, t, it.orderId, ts);
        break;
      case 'deposit': {
        // the first deposit brings the trader's capital; later ones come out of the reserve
        const a = Math.floor(Math.min(it.amount, it.initial ? it.amount : t.reserve) * 100) / 100;
        if (!(a >= 0.01)) break;
        v.emit({ type: 'deposit', ts, account: t.id, amount: a });
        if (!it.initial) t.reserve = Math.max(0, t.reserve - a);
        break;
      }
      case 'withdraw':
        withdraw(v, t, it.amount, ts);
        break;
    }
  }
  if (intents.length > 0) v.dirty.add(t.index);
}

function increasesNow(v: Venue, t: Trader, symbol: string, side: 'buy' | 'sell', qty: number): boolean {
  const q0 = v.book.positionsOf(t.id).find((p) => p.symbol === symbol)?.qty ?? 0;
  return Math.abs(q0 + (side === 'buy' ? qty : -qty)) > Math.abs(q0);
}

/** Whether filling a capped account's resting order now would increase a position beyond its leverage cap. */
function breachesCap(
  v: Venue,
  t: Trader,
  symbol: string,
  side: 'buy' | 'sell',
  qty: number,
  mark: number,
): boolean {
  if (!v.leverageCaps.has(t.index) || !increasesNow(v, t, symbol, side, qty)) return false;
  const snap = v.book.snapshot(t.id, { prices: false });
  return !snap || qty > capRoom(v, t, snap, symbol, side === 'buy' ? 1 : -1, mark);
}

/**
 * The risk engine's reduce-only restrictions (until its next look): the newly restricted accounts' resting
 * orders that would increase a position are cancelled.
 */
export function applyRestrictions(v: Venue, accounts: readonly string[], ts: number): void {
  for (const i of v.restrict(accounts)) {
    const t = v.traders[i]!;
    for (const o of [...t.resting.values()]) {
      const symbol = v.market.symbols[o.symbol]!.config.symbol;
      if (!increasesNow(v, t, symbol, o.side, o.qty)) continue;
      cancelOrder(v, t, o.orderId, ts);
      v.stats.reduceOnly.cancelledOrders++;
    }
  }
}

/** Resting limit orders the minute's mark has crossed fill at their price (maker). */
export function fillResting(v: Venue, m: number, ts: number): void {
  for (const s of v.market.symbols) {
    const mark = s.marks[m]!;
    const book = v.resting[s.index]!;
    for (const [orderId, o] of book) {
      if (o.side === 'buy' ? mark > o.price : mark < o.price) continue;
      const t = v.traders[o.trader]!;
      if (v.reduceOnly.has(t.index) && increasesNow(v, t, s.config.symbol, o.side, o.qty)) {
        cancelOrder(v, t, orderId, ts);
        v.stats.reduceOnly.cancelledOrders++;
        continue;
      }
      if (breachesCap(v, t, s.config.symbol, o.side, o.qty, mark)) {
        cancelOrder(v, t, orderId, ts);
        v.stats.leverageCap.cancelledOrders++;
        continue;
      }
      book.delete(orderId);
      t.resting.delete(orderId);
      const rate = t.behaviour === 'marketMaker' ? v.fees.marketMakerMaker : v.fees.maker;
      const fee = fee6(rate * o.qty * s.config.contractSize * o.price);
      v.emit({
        type: 'fill',
        ts,
        account: t.id,
        symbol: s.config.symbol,
        side: o.side,
        qty: o.qty,
        price: o.price,
        fee,
        liquidity: 'maker',
        orderId,
      });
      v.recordFlow(s.index, o.side === 'buy' ? 'sell' : 'buy', o.qty, o.price);
      v.dirty.add(t.index);
    }
  }
}

/** The risk engine's early reductions: reduce-only market orders, taker fills with slippage and impact. */
export function executeReductions(v: Venue, actions: readonly EarlyReduction[], ts: number): void {
  for (const a of actions) {
    const i = v.idToIndex.get(a.account);
    const s = v.market.symbols.find((x) => x.config.symbol === a.symbol);
    if (i === undefined || !s || !(a.qty > 0) || !Number.isFinite(a.qty)) continue;
    const pos = v.book.positionsOf(a.account).find((p) => p.symbol === a.symbol);
    if (!pos || pos.qty === 0) continue;
    const qty = Math.min(a.qty, Math.abs(pos.qty));
    const side = pos.qty > 0 ? 'sell' : 'buy';
    const price = executionPrice(
      side,
      qty,
      v.shapes[s.index]!,
      v.consumed[s.index]!,
      s.config.tickSize,
      true,
    );
    const orderId = `${PREEMPT_ORDER_PREFIX}${++v.preemptSeq}`;
    const fee = fee6(v.fees.taker * qty * s.config.contractSize * price);
    v.emit({
      type: 'order',
      ts,
      account: a.account,
      orderId,
      symbol: a.symbol,
      side,
      qty,
      price: null,
      reduceOnly: true,
    });
    v.emit({
      type: 'fill',
      ts,
      account: a.account,
      symbol: a.symbol,
      side,
      qty,
      price,
      fee,
      liquidity: 'taker',
      orderId,
    });
    v.recordFlow(s.index, side, qty, price);
    v.dirty.add(i);
  }
}
