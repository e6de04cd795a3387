/**
 * Liquidity behaviours: market makers (quote both sides around the mark, cancel and replace every few
 * minutes, skew and unload inventory, pull their quotes when volatility jumps) and cancel-heavy placers
 * (many limit orders away from the touch, most of them cancelled: a high order-to-fill ratio).
 */
import { adverseMove, reduceIntent, roundLot } from './intents.js';
import type { Intent, Trader, TraderView } from './types.js';

function cancelResting(t: Trader, share: number): Intent[] {
  const out: Intent[] = [];
  for (const o of t.resting.values())
    if (share >= 1 || t.rng.bernoulli(share)) out.push({ kind: 'cancel', orderId: o.orderId });
  return out;
}

export function marketMaker(t: Trader, v: TraderView): Intent[] {
  const s = t.symbol;
  const out = cancelResting(t, 1);
  const m = v.margin;
  if (!m || !(m.equity > 0)) return out;
  const mark = v.mark(s);
  const pos = v.position(s);
  const inventory = pos ? pos.qty * mark : 0; // USD, signed
  const maxInventory = t.leverage * m.equity;
  if (Math.abs(inventory) > maxInventory) out.push(...reduceIntent(v, s, 0.5));
  const vol = v.volRatio(s);
  if (vol > t.params.pullVolRatio) return out;
  const half = (t.params.quoteBps / 10_000) * Math.max(1, vol);
  const skew = (inventory / Math.max(1, maxInventory)) * half;
  const size = roundLot((0.25 * maxInventory) / mark, v.lotSize(s));
  if (!(size > 0)) return out;
  if (inventory < maxInventory)
    out.push({ kind: 'limit', symbol: s, side: 'buy', qty: size, price: mark * (1 - half - skew) });
  if (inventory > -maxInventory)
    out.push({ kind: 'limit', symbol: s, side: 'sell', qty: size, price: mark * (1 + half - skew) });
  return out;
}

export function cancelHeavy(t: Trader, v: TraderView): Intent[] {
  const s = t.symbol;
  const out = cancelResting(t, t.params.cancelShare);
  const pos = v.position(s);
  if (pos) {
    const adverse = adverseMove(v, s);
    if (adverse > t.params.stopLoss || -adverse > t.params.takeProfit) out.push(...reduceIntent(v, s));
  }
  const m = v.margin;
  if (!m || !(m.equity > 0)) return out;
  const mark = v.mark(s);
  const n = 1 + t.rng.int(3);
  for (let i = 0; i < n; i++) {
    const side = t.rng.bernoulli(0.5) ? 'buy' : 'sell';
    const away = t.rng.uniform(0.002, 0.02);
    const qty = roundLot((t.leverage * m.equity * t.rng.uniform(0.2, 0.6)) / mark, v.lotSize(s));
    if (qty > 0)
      out.push({
        kind: 'limit',
        symbol: s,
        side,
        qty,
        price: side === 'buy' ? mark * (1 - away) : mark * (1 + away),
      });
  }
  if (!pos && t.rng.bernoulli(0.04)) {
    const qty = roundLot((t.leverage * m.equity) / mark, v.lotSize(s));
    if (qty > 0)
      out.push({
        kind: 'market',
        symbol: s,
        side: t.rng.bernoulli(0.5) ? 'buy' : 'sell',
        qty,
        reduceOnly: false,
      });
  }
  return out;
}
