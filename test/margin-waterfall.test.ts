import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { CanonicalEvent } from '../src/events/schema.js';
import {
  applyTrade,
  bookValue,
  conservationReport,
  decide,
  MarginBook,
  MarginRuleError,
  runWaterfall,
} from '../src/margin/index.js';
import { eventsOf, opsArb, SYMBOLS, setupEvents } from './margin/arbitraries.js';
import { deposit, fill, instrument, mark } from './margin/fixtures.js';

const T = 1584018000150;

/** The spec example up to the mark of 6950, optionally with short counterparties (deposit, qty). */
function specBook(insuranceFund: number, shorts: Array<[string, number, number]> = []): MarginBook {
  const b = new MarginBook({ insuranceFund });
  const events: CanonicalEvent[] = [
    instrument(),
    mark(7900.5),
    deposit('a-17', 2000),
    fill('a-17', 'buy', 2, 7901, 6.32),
  ];
  for (const [id, dep, qty] of shorts) events.push(deposit(id, dep), fill(id, 'sell', qty, 7901));
  events.push(mark(6950));
  for (const e of events) b.apply(e);
  return b;
}

function replay(book: MarginBook, events: readonly CanonicalEvent[]): MarginBook {
  const after = book.clone();
  for (const e of events) after.apply(e);
  return after;
}

describe('runWaterfall: hand-computed cases', () => {
  it('reproduces the spec example: one liquidation at 6940 with fee 69.4, cash 2.28, no bankruptcy', () => {
    const b = specBook(0);
    const w = runWaterfall(b, { account: 'a-17', ts: T, prices: { 'BTC-PERP': 6940 } });
    expect(w.events).toHaveLength(1);
    expect(w.events[0]).toMatchObject({
      type: 'liquidation',
      account: 'a-17',
      side: 'sell',
      qty: 2,
      price: 6940,
    });
    expect((w.events[0] as { fee: number }).fee).toBeCloseTo(69.4, 9);
    expect(w.bankrupt).toBe(false);
    const after = replay(b, w.events);
    expect(after.snapshot('a-17')!.cash).toBeCloseTo(2.28, 9);
    expect(after.venueFunds().insuranceFund).toBeCloseTo(69.4, 9);
    expect(conservationReport(b, after, w.ledger).ok).toBe(true);
    expect(w.ledger.map((e) => e.kind)).toEqual(['liquidation-slippage', 'liquidation-fee']);
    expect(w.ledger[0]!.amount).toBeCloseTo(20, 9); // (6950 - 6940) * 2 to the market
  });

  it('caps the liquidation fee at the equity left, so the fee never creates a deficit', () => {
    const b = specBook(0);
    const w = runWaterfall(b, { account: 'a-17', ts: T, prices: { 'BTC-PERP': 6930 } });
    // 1993.68 - (7901 - 6930) * 2 = 51.68 < 0.005 * 2 * 6930 = 69.3
    expect((w.events[0] as { fee: number }).fee).toBeCloseTo(51.68, 9);
    expect(w.bankrupt).toBe(false);
    expect(replay(b, w.events).snapshot('a-17')!.cash).toBeCloseTo(0, 9);
  });

  it('a deficit the insurance fund can cover: no ADL, no socialised loss', () => {
    const b = specBook(1000, [['b', 5000, 2]]);
    const w = runWaterfall(b, { account: 'a-17', ts: T, prices: { 'BTC-PERP': 6800 } });
    expect(w.events.map((e) => e.type)).toEqual(['liquidation', 'bankruptcy']);
    expect(w.deficit).toBeCloseTo(208.32, 9); // 1993.68 - 1101 * 2
    const after = replay(b, w.events);
    expect(after.snapshot('a-17')!.cash).toBe(0);
    expect(after.venueFunds().insuranceFund).toBeCloseTo(1000 - 208.32, 9);
    expect(after.venueFunds().socialisedLoss).toBe(0);
    expect(after.positionsOf('b')[0]!.qty).toBe(-2); // untouched
    expect(conservationReport(b, after, w.ledger).ok).toBe(true);
  });

  it('beyond the fund: ADL at the bankruptcy price, best-ranked counterparty first, just enough for the fund', () => {
    // c: short 1 with 500 USD (higher effective leverage) ranks before b: short 1 with 10,000 USD
    const b = specBook(100, [
      ['b', 10_000, 1],
      ['c', 500, 1],
    ]);
    const bp = 6950 - 91.68 / 2; // 6904.16
    const w = runWaterfall(b, { account: 'a-17', ts: T, prices: { 'BTC-PERP': 6800 } });
    // deficit at 6800 is 208.32; the fund covers 100; each ADL contract saves 6904.16 - 6800 = 104.16
    const adlQty = (208.32 - 100) / 104.16;
    expect(w.events.map((e) => e.type)).toEqual(['liquidation', 'liquidation', 'bankruptcy', 'adl', 'adl']);
    expect(w.events[0]).toMatchObject({ price: 6800, fee: 0 });
    expect((w.events[0] as { qty: number }).qty).toBeCloseTo(2 - adlQty, 9);
    expect((w.events[1] as { price: number }).price).toBeCloseTo(bp, 9);
    expect(w.events[3]).toMatchObject({ type: 'adl', account: 'c', side: 'buy', qty: 1 });
    expect(w.events[4]).toMatchObject({ type: 'adl', account: 'b', side: 'buy' });
    expect((w.events[4] as { qty: number }).qty).toBeCloseTo(adlQty - 1, 9);
    expect(w.deficit).toBeCloseTo(100, 6);
    const after = replay(b, w.events);
    expect(after.venueFunds().insuranceFund).toBeCloseTo(0, 6);
    expect(after.venueFunds().socialisedLoss).toBeCloseTo(0, 6);
    expect(after.positionsOf('c')).toEqual([]);
    expect(after.snapshot('c')!.cashBreakdown.realisedPnl).toBeCloseTo(7901 - bp, 9);
    const report = conservationReport(b, after, w.ledger);
    expect(report.ok).toBe(true);
    expect(report.accountMismatches).toEqual([]);
  });

  it('with no fund and no profitable counterparty the deficit is socialised', () => {
    const b = specBook(0);
    const w = runWaterfall(b, { account: 'a-17', ts: T, prices: { 'BTC-PERP': 6800 } });
    expect(w.socialised).toBeCloseTo(208.32, 9);
    const after = replay(b, w.events);
    expect(after.venueFunds().socialisedLoss).toBeCloseTo(208.32, 9);
    expect(conservationReport(b, after, w.ledger).ok).toBe(true);
  });

  it('refuses an account above MM and bad execution prices, changing nothing', () => {
    const b = specBook(0);
    b.apply(mark(7900));
    expect(() => runWaterfall(b, { account: 'a-17', ts: T })).toThrow(MarginRuleError);
    b.apply(mark(6950));
    const before = JSON.stringify(b.toJSON());
    expect(() => runWaterfall(b, { account: 'a-17', ts: T, prices: { 'BTC-PERP': -1 } })).toThrow(
      /BAD_INPUT/,
    );
    expect(JSON.stringify(b.toJSON())).toBe(before);
  });
});

/** The outside counterparty of liquidation fills: its position, cash and funding, marked to market. */
class MarketSide {
  private readonly pos = new Map<string, { qty: number; avgEntry: number }>();
  cash = 0;
  trade(book: MarginBook, symbol: string, signedQty: number, price: number): void {
    const p = this.pos.get(symbol) ?? { qty: 0, avgEntry: 0 };
    const out = applyTrade(p.qty, p.avgEntry, signedQty, price, book.instrument(symbol)!.contractSize);
    this.cash += out.realised;
    this.pos.set(symbol, { qty: out.qty, avgEntry: out.avgEntry });
  }
  fund(book: MarginBook, symbol: string, rate: number): void {
    const q = this.pos.get(symbol)?.qty ?? 0;
    this.cash -= q * book.instrument(symbol)!.contractSize * book.markOf(symbol)! * rate;
  }
  equity(book: MarginBook): number {
    let e = this.cash;
    for (const [s, p] of this.pos)
      e += (book.markOf(s)! - p.avgEntry) * p.qty * book.instrument(s)!.contractSize;
    return e;
  }
}

describe('runWaterfall: properties over random closed-system histories', () => {
  it('conserves value (traders + insurance + fees - socialised + market) and replays to the same state', () => {
    const seen = { waterfalls: 0, bankrupt: 0, adl: 0, socialised: 0 };
    fc.assert(
      fc.property(
        opsArb,
        fc.double({ min: 0, max: 2_000, noNaN: true }),
        fc.array(fc.double({ min: -0.05, max: 0.02, noNaN: true }), { minLength: 1, maxLength: 8 }),
        (ops, fund, slips) => {
          const book = new MarginBook({ insuranceFund: fund });
          const log: CanonicalEvent[] = [];
          const market = new MarketSide();
          let netIn = fund;
          const emit = (e: CanonicalEvent) => {
            book.apply(e);
            log.push(e);
          };
          for (const e of setupEvents()) emit(e);
          let n = 0;
          ops.forEach((op, i) => {
            for (const e of eventsOf(op, book, i + 1)) {
              if (e.type === 'funding') market.fund(book, e.symbol, e.rate);
              emit(e);
              if (e.type === 'deposit') netIn += e.amount;
              if (e.type === 'withdrawal') netIn -= e.amount;
            }
            if (op.kind !== 'mark') return;
            for (const id of book.accountIds()) {
              const s = book.snapshot(id)!;
              if (!(s.equity < s.mm)) continue;
              const slip = slips[n++ % slips.length]!;
              const prices = Object.fromEntries(SYMBOLS.map((sym) => [sym, book.markOf(sym)! * (1 + slip)]));
              const orders = decide({ margin: s, instruments: book, now: i }).decision.orders;
              const before = book.clone();
              const w = runWaterfall(book, { account: id, ts: i + 1, prices, orders });
              seen.waterfalls++;
              if (w.bankrupt) seen.bankrupt++;
              if (w.adlCovered > 0) seen.adl++;
              if (w.socialised > 1e-9) seen.socialised++;
              for (const e of w.events) emit(e);
              for (const f of w.marketFills)
                market.trade(book, f.symbol, f.side === 'buy' ? f.qty : -f.qty, f.price);
              const report = conservationReport(before, book, w.ledger);
              expect(report.accountMismatches).toEqual([]);
              expect(Math.abs(report.residual)).toBeLessThan(1e-6 * Math.max(1, Math.abs(report.before)));
            }
          });
          const total = bookValue(book) + market.equity(book);
          expect(Math.abs(total - netIn)).toBeLessThan(1e-6 * Math.max(1, netIn));
          const again = new MarginBook({ insuranceFund: fund });
          for (const e of log) again.apply(e);
          expect(again.toJSON()).toEqual(book.toJSON());
          expect(again.venueFunds()).toEqual(book.venueFunds());
        },
      ),
      { numRuns: 150 },
    );
    // the runs did exercise every branch of the waterfall
    expect(seen.waterfalls).toBeGreaterThan(20);
    expect(seen.bankrupt).toBeGreaterThan(5);
    expect(seen.adl).toBeGreaterThan(2);
    expect(seen.socialised).toBeGreaterThan(2);
  });
});
