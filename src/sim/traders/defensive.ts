/**
 * Risk-managing (and risk-leaking) behaviours: careful traders (low leverage, stops, take profit; their
 * margin-call reaction is to top up or cut, see reactions.ts), hedged accounts (long one instrument,
 * short another: safe until the basis blows, as FTT's did), and withdrawers, who take collateral out
 * while exposed so that their leverage creeps up towards the initial-margin limit.
 */
import { adverseMove, closeAllIntents, openIntent, reduceIntent } from './intents.js';
import type { Intent, Trader, TraderView } from './types.js';

export function careful(t: Trader, v: TraderView): Intent[] {
  const s = t.symbol;
  const pos = v.position(s);
  if (!pos) {
    const sig = v.momentum(s, t.params.lookback);
    if (Math.abs(sig) < 0.8 || v.volRatio(s) > 3) return [];
    return openIntent(v, s, Math.sign(sig), t.leverage);
  }
  const adverse = adverseMove(v, s);
  if (adverse > t.params.stopLoss || -adverse > t.params.takeProfit) return reduceIntent(v, s);
  return [];
}

export function hedged(t: Trader, v: TraderView): Intent[] {
  const a = t.symbol;
  const b = t.hedgeSymbol;
  if (b < 0) return careful(t, v);
  const pa = v.position(a);
  const pb = v.position(b);
  if (!pa && !pb) {
    const dir = t.rng.bernoulli(0.5) ? 1 : -1;
    return [...openIntent(v, a, dir, t.leverage / 2), ...openIntent(v, b, -dir, t.leverage / 2)];
  }
  // one leg lost (e.g. a liquidation took it): unwind the other
  if (!pa || !pb) return closeAllIntents(v);
  const loss = Math.max(adverseMove(v, a), adverseMove(v, b));
  if (loss > t.params.stopLoss && t.rng.bernoulli(0.5)) return closeAllIntents(v);
  // rebalance the larger leg when the notionals drift apart by more than 25%
  const ratio = pa.notional / Math.max(1e-9, pb.notional);
  if (ratio > 1.25) return reduceIntent(v, a, 1 - 1 / ratio);
  if (ratio < 0.8) return reduceIntent(v, b, 1 - ratio);
  return [];
}

export function withdrawer(t: Trader, v: TraderView): Intent[] {
  const s = t.symbol;
  const pos = v.position(s);
  if (!pos) {
    const sig = v.momentum(s, t.params.lookback);
    return openIntent(v, s, Math.abs(sig) > 0.5 ? Math.sign(sig) : t.rng.bernoulli(0.5) ? 1 : -1, t.leverage);
  }
  if (adverseMove(v, s) > 0.5 / t.leverage && t.rng.bernoulli(0.2)) return reduceIntent(v, s);
  if (t.rng.bernoulli(t.params.withdrawProb)) {
    const free = v.withdrawable();
    const share = t.rng.uniform(0.2, 0.7);
    const amount = Math.floor(free * share * 100) / 100;
    if (amount >= 1) return [{ kind: 'withdraw', amount }];
  }
  return [];
}

export function leaveIfFlat(t: Trader, v: TraderView): Intent[] {
  if (v.position(t.symbol)) return closeAllIntents(v);
  return [];
}
