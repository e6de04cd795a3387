/**
 * One decision of one trader: the reactions every human shares (fund the account on arrival, come back
 * or leave after a liquidation, answer a margin call, panic in a deep drawdown, tilt after losses), then
 * the behaviour's own logic; and when to decide next (more often when exposed near the margin line and
 * when the market is moving).
 */
import { careful, hedged, withdrawer } from './defensive.js';
import { gambler, martingale, meanReversion, trend } from './directional.js';
import { closeAllIntents, reduceIntent, topUpFor } from './intents.js';
import { cancelHeavy, marketMaker } from './liquidity.js';
import type { Behaviour, Intent, Trader, TraderView } from './types.js';

const LOGIC: Record<Behaviour, (t: Trader, v: TraderView) => Intent[]> = {
  trend,
  meanReversion,
  martingale,
  gambler,
  hedged,
  careful,
  withdrawer,
  marketMaker,
  cancelHeavy,
};

function deposit(t: Trader, amount: number): Intent[] {
  const a = Math.floor(Math.min(amount, t.reserve) * 100) / 100;
  return a >= 1 ? [{ kind: 'deposit', amount: a }] : [];
}

/** A margin call: what each kind of trader does when equity / MM falls under its call level. */
function marginCall(t: Trader, v: TraderView): Intent[] | undefined {
  const m = v.margin;
  if (!m || m.positions.length === 0 || !(m.marginRatio < t.params.callLevel)) return undefined;
  const r = t.rng.next();
  switch (t.behaviour) {
    case 'careful':
      if (t.reserve > topUpFor(v, 3) && r < 0.7) return deposit(t, topUpFor(v, 3));
      return reduceIntent(v, t.symbol, 0.5);
    case 'martingale':
      return undefined; // it doubles down instead (directional.ts)
    case 'gambler':
      return r < 0.3 ? deposit(t, topUpFor(v, 1.5)) : undefined;
    case 'withdrawer':
      return r < 0.1 ? reduceIntent(v, t.symbol, 0.5) : undefined;
    case 'marketMaker':
      return closeAllIntents(v);
    default:
      if (r < 0.3) return reduceIntent(v, t.symbol, 0.5);
      if (r < 0.45) return deposit(t, topUpFor(v, 2));
      return undefined;
  }
}

export function decide(t: Trader, v: TraderView): Intent[] {
  const m = v.margin;
  if (!t.funded) {
    t.funded = true;
    return [{ kind: 'deposit', amount: Math.floor(t.capital * 100) / 100, initial: true }];
  }
  // wiped out (liquidated, or bankrupt: cash reset to 0): come back with fresh money and more leverage, or leave
  if (m && m.positions.length === 0 && m.equity < 0.1 * t.capital) {
    if (t.liquidations > 0 && t.rng.bernoulli(t.params.comeback) && t.reserve > 0.2 * t.capital) {
      t.leverage = Math.min(125, t.leverage * t.rng.uniform(1.2, 2)); // tilt
      t.peakEquity = 0;
      return deposit(t, Math.min(t.reserve, t.capital));
    }
    if (t.liquidations > 0 || m.equity < 1) {
      t.gone = true;
      return [];
    }
  }
  if (m) t.peakEquity = Math.max(t.peakEquity, m.equity);
  const call = marginCall(t, v);
  if (call && call.length > 0) return call;
  if (m && m.positions.length > 0 && t.peakEquity > 0) {
    const drawdown = 1 - m.equity / t.peakEquity;
    if (drawdown > t.params.panicDrawdown && t.rng.bernoulli(0.5)) {
      t.peakEquity = m.equity;
      return closeAllIntents(v);
    }
  }
  return LOGIC[t.behaviour](t, v);
}

/** Mean minutes until the next decision, given the state the trader just saw. */
export function decisionInterval(t: Trader, v: TraderView): number {
  let mean = t.meanInterval;
  const m = v.margin;
  if (m && m.positions.length > 0 && m.marginRatio < 3) mean *= 0.5;
  const vol = v.volRatio(t.symbol);
  if (vol > 1) mean /= Math.min(3, Math.sqrt(vol));
  return Math.max(1, mean);
}
