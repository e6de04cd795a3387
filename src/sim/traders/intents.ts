/**
 * Building intents from a trader's view: sizing a position from a leverage target, closing or trimming
 * a position (reduce-only), lot rounding. Shared by every behaviour.
 */
import type { Intent, TraderView } from './types.js';

/** Quantity rounded down to the lot, free of float dust. */
export function roundLot(qty: number, lot: number): number {
  const n = Math.floor(qty / lot + 1e-9);
  return Number((n * lot).toPrecision(12));
}

export function sideOf(direction: number): 'buy' | 'sell' {
  return direction > 0 ? 'buy' : 'sell';
}

/** A market order adding `leverage` x equity of notional in `direction` (nothing if under one lot). */
export function openIntent(v: TraderView, symbol: number, direction: number, leverage: number): Intent[] {
  const equity = v.margin?.equity ?? 0;
  if (!(equity > 0)) return [];
  const lev = Math.min(leverage, v.maxLeverage(symbol));
  const qty = roundLot((lev * equity) / v.mark(symbol), v.lotSize(symbol));
  if (!(qty > 0)) return [];
  return [{ kind: 'market', symbol, side: sideOf(direction), qty, reduceOnly: false }];
}

/** Reduce-only market order closing `fraction` of the position on `symbol`. */
export function reduceIntent(v: TraderView, symbol: number, fraction = 1): Intent[] {
  const pos = v.position(symbol);
  if (!pos) return [];
  const abs = Math.abs(pos.qty);
  const qty = fraction >= 1 ? abs : roundLot(abs * fraction, v.lotSize(symbol));
  if (!(qty > 0)) return [];
  return [{ kind: 'market', symbol, side: sideOf(-pos.qty), qty, reduceOnly: true }];
}

export function closeAllIntents(v: TraderView): Intent[] {
  const out: Intent[] = [];
  for (let s = 0; s < v.symbolCount; s++) out.push(...reduceIntent(v, s, 1));
  return out;
}

/** Signed adverse move of the position's mark against its entry (positive = losing). */
export function adverseMove(v: TraderView, symbol: number): number {
  const pos = v.position(symbol);
  if (!pos || pos.avgEntry <= 0) return 0;
  return ((pos.avgEntry - pos.mark) / pos.avgEntry) * Math.sign(pos.qty);
}

/** USD to deposit so that equity / MM reaches `targetRatio` (0 when already there). */
export function topUpFor(v: TraderView, targetRatio: number): number {
  const m = v.margin;
  if (!m || !(m.mm > 0)) return 0;
  return Math.max(0, targetRatio * m.mm - m.equity);
}
