/**
 * Directional behaviours: trend followers (momentum entries, exits on reversal, optional stops), mean
 * reverters (fade stretched moves, take profit at the mean, some average down), martingale traders
 * (double down on a losing position every `addStep`, funding the margin from their reserve: the
 * order-flow precursor of many defaults) and high-leverage gamblers (25-110x, hold for a target or the
 * liquidation).
 */
import type { Rng } from '../random.js';
import { adverseMove, closeAllIntents, openIntent, reduceIntent } from './intents.js';
import type { Intent, Trader, TraderView } from './types.js';

export function trend(t: Trader, v: TraderView): Intent[] {
  const s = t.symbol;
  const sig = v.momentum(s, t.params.lookback);
  const pos = v.position(s);
  if (!pos) return Math.abs(sig) > t.params.threshold ? openIntent(v, s, Math.sign(sig), t.leverage) : [];
  const dir = Math.sign(pos.qty);
  if (adverseMove(v, s) > t.params.stopLoss) return reduceIntent(v, s);
  if (sig * dir < -t.params.threshold / 2) return reduceIntent(v, s);
  return [];
}

export function meanReversion(t: Trader, v: TraderView): Intent[] {
  const s = t.symbol;
  const sig = v.momentum(s, t.params.lookback);
  const pos = v.position(s);
  if (!pos) {
    t.adds = 0;
    return Math.abs(sig) > t.params.threshold ? openIntent(v, s, -Math.sign(sig), t.leverage) : [];
  }
  const adverse = adverseMove(v, s);
  if (-adverse > t.params.takeProfit || Math.abs(sig) < 0.3) return reduceIntent(v, s);
  // averaging down: add half the position when the move extends against it
  if (t.adds < t.params.maxAdds && adverse > t.params.addStep * (t.adds + 1)) {
    t.adds++;
    return addTo(v, s, 0.5);
  }
  return [];
}

function addTo(v: TraderView, s: number, fraction: number): Intent[] {
  const pos = v.position(s);
  if (!pos) return [];
  const qty = Math.abs(pos.qty) * fraction;
  const lot = v.lotSize(s);
  const q = Number((Math.floor(qty / lot + 1e-9) * lot).toPrecision(12));
  if (!(q > 0)) return [];
  return [{ kind: 'market', symbol: s, side: pos.qty > 0 ? 'buy' : 'sell', qty: q, reduceOnly: false }];
}

function coin(r: Rng): number {
  return r.bernoulli(0.5) ? 1 : -1;
}

export function martingale(t: Trader, v: TraderView): Intent[] {
  const s = t.symbol;
  const pos = v.position(s);
  if (!pos) {
    t.adds = 0;
    t.leverage = t.baseLeverage;
    const fade = v.momentum(s, 15);
    const dir = Math.abs(fade) > 0.5 ? -Math.sign(fade) : coin(t.rng);
    return openIntent(v, s, dir, t.leverage);
  }
  const adverse = adverseMove(v, s);
  if (-adverse > t.params.takeProfit) return reduceIntent(v, s);
  if (t.adds < t.params.maxAdds && adverse > t.params.addStep * (t.adds + 1)) {
    t.adds++;
    // double: the margin for it comes from the reserve if the account lacks it
    const out: Intent[] = [];
    const m = v.margin!;
    const addIm = pos.im;
    if (m.freeCollateral < addIm * 1.1 && t.reserve > 1)
      out.push({ kind: 'deposit', amount: Math.min(t.reserve, addIm * 1.2 - m.freeCollateral) });
    out.push(...addTo(v, s, 1));
    return out;
  }
  return [];
}

export function gambler(t: Trader, v: TraderView): Intent[] {
  const s = t.symbol;
  const pos = v.position(s);
  if (!pos) {
    const sig = v.momentum(s, t.params.lookback);
    const dir = Math.abs(sig) > 0.3 && t.rng.bernoulli(0.7) ? Math.sign(sig) : coin(t.rng);
    return openIntent(v, s, dir, t.leverage);
  }
  if (-adverseMove(v, s) > t.params.takeProfit) return closeAllIntents(v);
  return [];
}
