/**
 * A small deterministic venue history for pipeline tests (test helper): two instruments with random-walk
 * marks (and a stretch with no marks), public trades, books, hourly funding, and accounts that deposit,
 * place and cancel orders, trade, withdraw, top up and get liquidated when their equity falls below
 * maintenance (decided with the margin core, so every event is consistent with it). Events are in `ts`
 * order and carry ids.
 */
import type { CanonicalEvent } from '../../src/events/schema.js';
import { MarginBook } from '../../src/margin/index.js';
import { Rng } from '../../src/sim/random.js';
import { HOUR, instrument, MIN, T0 } from './builders.js';

export interface SyntheticOptions {
  seed: number;
  accounts: number;
  minutes: number;
  /** ms between market ticks */
  tickMs?: number;
}

export function syntheticHistory(opts: SyntheticOptions): CanonicalEvent[] {
  const rng = new Rng(opts.seed, 'feature-history');
  const tick = opts.tickMs ?? 10_000;
  const symbols = ['BTC-PERP', 'ETH-PERP'];
  const price: Record<string, number> = { 'BTC-PERP': 30_000, 'ETH-PERP': 2_000 };
  const out: CanonicalEvent[] = [];
  const book = new MarginBook();
  let seq = 0;
  const emit = (ev: CanonicalEvent) => {
    const withId = { ...ev, id: `e${seq++}` } as CanonicalEvent;
    book.apply(withId);
    out.push(withId);
  };
  for (const s of symbols) emit({ ...instrument(T0, s, 0.01, 0.02) });
  const accounts = Array.from({ length: opts.accounts }, (_, i) => `acct-${i}`);
  let orderSeq = 0;
  const open: Record<string, string[]> = {};
  const end = T0 + opts.minutes * MIN;
  // a 7-minute stretch without marks on ETH, to exercise gaps
  const gapFrom = T0 + Math.floor(opts.minutes / 2) * MIN;
  const gapTo = gapFrom + 7 * MIN;
  for (let t = T0; t <= end; t += tick) {
    for (const s of symbols) {
      price[s]! *= Math.exp(0.002 * rng.normal() - (s === 'BTC-PERP' ? 0.0002 : 0));
      const p = price[s]!;
      const inGap = s === 'ETH-PERP' && t >= gapFrom && t < gapTo;
      if (!inGap) emit({ type: 'mark', ts: t, symbol: s, price: p });
      if (rng.bernoulli(0.6))
        emit({
          type: 'trade',
          ts: t,
          symbol: s,
          price: p,
          qty: rng.uniform(0.1, 5),
          aggressor: rng.bernoulli(0.5) ? 'buy' : 'sell',
        });
      if (rng.bernoulli(0.3))
        emit({
          type: 'book',
          ts: t,
          symbol: s,
          bid: p * 0.9995,
          ask: p * 1.0005,
          bidDepth: rng.uniform(1, 50),
          askDepth: rng.uniform(1, 50),
        });
      if ((t - T0) % HOUR === 0 && t > T0)
        emit({ type: 'funding', ts: t, symbol: s, rate: 0.0001 * rng.normal() });
    }
    for (const a of accounts) {
      if (t === T0) emit({ type: 'deposit', ts: t, account: a, amount: rng.uniform(500, 5_000) });
      if (!rng.bernoulli(0.15)) continue;
      const s = symbols[rng.int(2)]!;
      const p = price[s]!;
      const u = rng.next();
      if (u < 0.45) {
        const orderId = `o${orderSeq++}`;
        const mine = open[a] ?? [];
        mine.push(orderId);
        open[a] = mine;
        emit({
          type: 'order',
          ts: t,
          account: a,
          orderId,
          symbol: s,
          side: 'buy',
          qty: 1,
          price: p,
          reduceOnly: false,
        });
      } else if (u < 0.75) {
        const ids = open[a] ?? [];
        const orderId = ids.shift();
        if (orderId) emit({ type: 'cancel', ts: t, account: a, orderId });
      } else if (u < 0.97) {
        const m = book.snapshot(a, { prices: false });
        const equity = m ? m.equity : 0;
        if (equity <= 0) continue;
        const qty = (equity * rng.uniform(1, 8)) / p;
        emit({
          type: 'fill',
          ts: t,
          account: a,
          symbol: s,
          side: rng.bernoulli(0.55) ? 'buy' : 'sell',
          qty,
          price: p,
          fee: qty * p * 0.0004,
          liquidity: rng.bernoulli(0.6) ? 'taker' : 'maker',
        });
      } else if (u < 0.985) emit({ type: 'deposit', ts: t, account: a, amount: rng.uniform(100, 1_000) });
      else {
        const m = book.snapshot(a, { prices: false });
        if (m && m.freeCollateral > 10)
          emit({ type: 'withdrawal', ts: t, account: a, amount: m.freeCollateral / 2 });
      }
    }
    // liquidate every account below maintenance, whole positions at the mark
    for (const a of accounts) {
      const m = book.snapshot(a, { prices: false });
      if (!m || m.positions.length === 0 || m.equity >= m.mm) continue;
      for (const pos of m.positions)
        emit({
          type: 'liquidation',
          ts: t,
          account: a,
          symbol: pos.symbol,
          side: pos.qty > 0 ? 'sell' : 'buy',
          qty: Math.abs(pos.qty),
          price: pos.mark,
          fee: 0,
        });
      const after = book.snapshot(a, { prices: false })!;
      if (after.equity < 0) emit({ type: 'bankruptcy', ts: t, account: a, deficit: -after.equity });
    }
  }
  return out;
}
