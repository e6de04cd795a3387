/**
 * The venue's liquidation pass, right after each batch of marks (every minute, every 10 s in a fast
 * minute): every account that may be
 * under maintenance margin is evaluated by the margin core; those with equity < MM are liquidated by the
 * core's policy (`decide`: partial steps back to MM x 1.1, whole when small) and default waterfall
 * (`runWaterfall`: fee to the insurance fund, bankruptcy, ADL, socialised loss) at prices walked down the
 * simulated book, and the events it returns are emitted as they are.
 *
 * Which accounts "may be under MM": those touched since the last pass (fills, transfers, funding, ADL)
 * and those whose safety band ran out. After an evaluation with slack = equity - MM > 0, no mark move of
 * relative size r can breach MM while sum(notional * (1 + mmr)) * r < slack and no position changes tier,
 * so the account is next evaluated at the first mark step any of its marks leaves that band
 * (first-passage.ts over the precomputed path). The set of accounts liquidated after a batch of marks is
 * therefore exactly the set a replay through the MarginBook finds under MM after those marks.
 */
import { type AccountMargin, decide, runWaterfall, tierMax } from '../../margin/index.js';
import { SUBSTEPS } from '../market/market-paths.js';
import { executionPrice } from '../market/microstructure.js';
import { cancelOrder } from './execution.js';
import { PHASE, SUB_STEP_MS, type Venue } from './venue.js';

/** The first mark step after `step` at which a mark move could have consumed the account's slack. */
function nextCheck(v: Venue, snap: AccountMargin, step: number): number {
  if (snap.positions.length === 0) return Number.POSITIVE_INFINITY;
  const slack = snap.equity - snap.mm;
  let exposure = 0;
  for (const p of snap.positions) exposure += p.notional * (1 + p.mmr);
  let r = exposure > 0 ? slack / exposure : Number.POSITIVE_INFINITY;
  for (const p of snap.positions) {
    if (!(p.notional > 0)) continue;
    const tiers = v.book.instrument(p.symbol)!.tiers;
    if (p.tierIndex < tiers.length - 1) r = Math.min(r, tierMax(tiers[p.tierIndex]!) / p.notional - 1);
    if (p.tierIndex > 0) r = Math.min(r, 1 - tierMax(tiers[p.tierIndex - 1]!) / p.notional);
  }
  r *= 0.999; // float headroom
  if (!(r > 1e-9)) return step + 1;
  let next = Number.POSITIVE_INFINITY;
  for (const p of snap.positions) {
    const s = v.market.symbols.find((x) => x.config.symbol === p.symbol)!;
    next = Math.min(next, s.range.firstExit(step + 1, p.mark * (1 - r), p.mark * (1 + r)));
  }
  return next;
}

function liquidate(v: Venue, i: number, snap: AccountMargin, ts: number): void {
  const t = v.traders[i]!;
  for (const orderId of [...t.resting.keys()]) cancelOrder(v, t, orderId, ts);
  const { decision } = decide({ margin: snap, instruments: v.book, now: ts });
  const symIndex = (symbol: string): number => v.market.symbols.findIndex((x) => x.config.symbol === symbol);
  const pricesFor = (orders: readonly { symbol: string; side: 'buy' | 'sell'; qty: number }[]) => {
    const prices: Record<string, number> = {};
    for (const o of orders) {
      const k = symIndex(o.symbol);
      const s = v.market.symbols[k]!;
      prices[o.symbol] = executionPrice(
        o.side,
        o.qty,
        v.shapes[k]!,
        v.consumed[k]!,
        s.config.tickSize,
        false,
      );
    }
    return prices;
  };
  let result = runWaterfall(v.book, {
    account: t.id,
    ts,
    prices: pricesFor(decision.orders),
    orders: decision.orders,
  });
  const partial = decision.orders.some((o) => {
    const p = snap.positions.find((x) => x.symbol === o.symbol);
    return p !== undefined && o.qty < Math.abs(p.qty);
  });
  if (partial && result.closedAll) {
    // the waterfall closed everything (a partial close would have left negative equity): reprice the whole
    const whole = snap.positions.map((p) => ({
      symbol: p.symbol,
      side: p.qty > 0 ? ('sell' as const) : ('buy' as const),
      qty: Math.abs(p.qty),
    }));
    result = runWaterfall(v.book, { account: t.id, ts, prices: pricesFor(whole) });
  }
  for (const ev of result.events) {
    v.emit(ev);
    if (ev.type === 'adl') {
      const j = v.idToIndex.get(ev.account);
      if (j !== undefined) v.dirty.add(j);
    }
  }
  for (const f of result.marketFills) {
    const k = symIndex(f.symbol);
    const takerSide = f.side === 'buy' ? 'sell' : 'buy';
    executionPrice(
      takerSide,
      f.qty,
      v.shapes[k]!,
      v.consumed[k]!,
      v.market.symbols[k]!.config.tickSize,
      true,
    );
    v.emit({ type: 'trade', ts, symbol: f.symbol, price: f.price, qty: f.qty, aggressor: takerSide });
  }
  t.liquidations++;
  t.lastLiquidatedMinute = v.minute;
  v.dirty.add(i);
}

/** The pass after the marks of mark step `step` (= minute * SUBSTEPS + sub-step). */
export function liquidationPass(v: Venue, step: number): void {
  const candidates = new Set<number>(v.dirty);
  v.dirty.clear();
  for (const i of v.due.get(step) ?? []) if (v.checkAt[i] === step) candidates.add(i);
  v.due.delete(step);
  const sorted = [...candidates].sort((a, b) => a - b);
  // decide the whole set first (as a replay does, right after the market events), then liquidate
  const under: Array<[number, AccountMargin]> = [];
  for (const i of sorted) {
    const snap = v.book.snapshot(v.traders[i]!.id, { prices: false });
    if (!snap) continue;
    if (snap.equity < snap.mm) under.push([i, snap]);
    else v.scheduleCheck(i, nextCheck(v, snap, step));
  }
  const m = Math.floor(step / SUBSTEPS);
  const ts = v.ts(m, (step % SUBSTEPS) * SUB_STEP_MS + PHASE.liquidation);
  for (const [i] of under) {
    const snap = v.book.snapshot(v.traders[i]!.id);
    if (!snap || !(snap.equity < snap.mm)) {
      v.dirty.add(i);
      continue;
    }
    liquidate(v, i, snap, ts);
  }
}
