/**
 * The default loss waterfall for an account in LIQUIDATE, as the canonical events it produces (so a
 * simulator emits exactly these and a replay through `MarginBook.apply` reproduces the state):
 *
 * 1. The planned closes (default: every position) fill at the caller's execution prices (slippage is
 *    the caller's; default the mark). The liquidation fee (`liquidationFeeRate` x closed notional) goes
 *    to the insurance fund, capped at the equity left so that a fee never creates a deficit. An account
 *    whose equity would be negative after a partial plan is closed out whole.
 * 2. If its equity is then negative the account is bankrupt: the insurance fund covers the deficit.
 * 3. If the fund cannot, part of the bankrupt position goes, instead of to the market, to the opposite
 *    side's profitable accounts (ADL queue) at the position's bankruptcy price, just enough for the fund
 *    to cover what is left; those closes are `liquidation` events (fee 0) for the bankrupt account and
 *    `adl` events for the counterparties.
 * 4. Whatever the fund still cannot cover is socialised (written off) by the `bankruptcy` event.
 * Event order: liquidation..., bankruptcy, adl... . The book passed in is never mutated.
 */
import type { AdlEv, BankruptcyEv, CanonicalEvent, LiquidationEv } from '../events/schema.js';
import { adlQueue } from './adl-ranking.js';
import { MarginRuleError } from './errors.js';
import { Ledger, type LedgerEntry } from './ledger.js';
import type { MarginBook } from './margin-book.js';
import type { OrderPlan } from './policy-types.js';

export interface WaterfallInput {
  account: string;
  ts: number; // ms stamped on the events
  /** USD execution price per symbol for the liquidation fills; default the mark */
  prices?: Readonly<Record<string, number>>;
  /** the closes to make (a LIQUIDATE decision's orders); default: every position */
  orders?: readonly Pick<OrderPlan, 'symbol' | 'side' | 'qty'>[];
  /** when set, events get ids `${idPrefix}:${n}` */
  idPrefix?: string;
}

/** The outside counterparty's side of a liquidation fill (for simulators that model it). */
export interface MarketFill {
  symbol: string;
  side: 'buy' | 'sell'; // the market's side
  qty: number; // contracts
  price: number; // USD
}

export interface WaterfallResult {
  events: CanonicalEvent[];
  ledger: LedgerEntry[];
  marketFills: MarketFill[];
  /** true when every position was closed */
  closedAll: boolean;
  bankrupt: boolean;
  /** USD: the bankruptcy event's deficit (0 if none) */
  deficit: number;
  insuranceCovered: number; // USD
  socialised: number; // USD
  /** USD of deficit avoided by closing against the ADL queue at the bankruptcy price */
  adlCovered: number;
  liquidationFees: number; // USD
}

interface Close {
  symbol: string;
  qty: number; // contracts > 0
  dir: 1 | -1; // sign of the position being closed
  price: number; // USD execution
  mark: number; // USD
  c: number; // contract size
  bankruptcyPrice: number | null; // USD
  adl: number; // contracts routed to the ADL queue
}

export function runWaterfall(book: MarginBook, input: WaterfallInput): WaterfallResult {
  const { account, ts } = input;
  const snap = book.snapshot(account);
  if (!snap) throw new MarginRuleError('UNKNOWN_ACCOUNT', `no account "${account}"`, 'account');
  if (!(snap.equity < snap.mm))
    throw new MarginRuleError('NOT_LIQUIDATABLE', `account "${account}" has equity >= MM`, 'account');
  const priceOf = (symbol: string, mark: number): number => {
    const p = input.prices?.[symbol] ?? mark;
    if (!(Number.isFinite(p) && p > 0))
      throw new MarginRuleError(
        'BAD_INPUT',
        `execution price for ${symbol} must be finite and > 0`,
        'prices',
      );
    return p;
  };
  const closesFor = (full: boolean): Close[] =>
    snap.positions.flatMap((p) => {
      const dir = p.qty > 0 ? 1 : -1;
      let qty = Math.abs(p.qty);
      if (!full && input.orders) {
        const wanted = input.orders
          .filter((o) => o.symbol === p.symbol)
          .reduce((a, o) => {
            if ((o.side === 'sell') !== (dir === 1) || !(o.qty > 0))
              throw new MarginRuleError(
                'BAD_INPUT',
                `order on ${o.symbol} does not reduce the position`,
                'orders',
              );
            return a + o.qty;
          }, 0);
        qty = Math.min(qty, wanted);
      }
      if (qty === 0) return [];
      const spec = book.instrument(p.symbol)!;
      return [
        {
          symbol: p.symbol,
          qty,
          dir,
          price: priceOf(p.symbol, p.mark),
          mark: p.mark,
          c: spec.contractSize,
          bankruptcyPrice: p.bankruptcyPrice,
          adl: 0,
        },
      ];
    });
  for (const o of input.orders ?? [])
    if (!snap.positions.some((p) => p.symbol === o.symbol))
      throw new MarginRuleError('BAD_INPUT', `order on ${o.symbol}: no position`, 'orders');

  let seq = 0;
  const stamp = <T extends CanonicalEvent>(ev: T): T =>
    input.idPrefix === undefined ? ev : { ...ev, id: `${input.idPrefix}:${seq++}` };
  const liq = (cl: Close, qty: number, price: number, fee: number): LiquidationEv =>
    stamp({
      type: 'liquidation',
      ts,
      account,
      symbol: cl.symbol,
      side: cl.dir > 0 ? 'sell' : 'buy',
      qty,
      price,
      fee,
    });

  // equity after the closes at the execution prices, before fees
  const trial = (closes: Close[]): number => {
    const scratch = book.subset([account]);
    for (const cl of closes) scratch.apply(liq(cl, cl.qty, cl.price, 0));
    return scratch.snapshot(account, { prices: false })!.equity;
  };
  let closes = closesFor(false);
  let equityAfter = trial(closes);
  const partial =
    closes.length < snap.positions.length ||
    closes.some((cl, i) => cl.qty < Math.abs(snap.positions[i]!.qty));
  if (equityAfter < 0 && partial) {
    closes = closesFor(true);
    equityAfter = trial(closes);
  }
  const scratch = book.subset([account]);
  const ledger = new Ledger();
  const events: CanonicalEvent[] = [];
  const marketFills: MarketFill[] = [];
  const who = `account:${account}` as const;
  const emitClose = (cl: Close, qty: number, price: number, fee: number, viaAdl = false): void => {
    const ev = liq(cl, qty, price, fee);
    scratch.apply(ev);
    events.push(ev);
    if (viaAdl) return; // the ADL legs carry this transfer in the ledger
    const value = (cl.mark - price) * -cl.dir * qty * cl.c; // USD the account gains against the mark
    ledger.add({
      ts,
      kind: 'liquidation-slippage',
      from: 'market',
      to: who,
      amount: value,
      symbol: cl.symbol,
      qty,
      price,
    });
    ledger.add({ ts, kind: 'liquidation-fee', from: who, to: 'insurance', amount: fee, symbol: cl.symbol });
    marketFills.push({ symbol: cl.symbol, side: cl.dir > 0 ? 'buy' : 'sell', qty, price });
  };

  let liquidationFees = 0;
  if (equityAfter >= 0) {
    const raw = closes.map((cl) => book.instrument(cl.symbol)!.liquidationFeeRate * cl.qty * cl.c * cl.price);
    const total = raw.reduce((a, b) => a + b, 0);
    const scale = total > equityAfter ? equityAfter / total : 1;
    closes.forEach((cl, i) => {
      const fee = raw[i]! * scale;
      liquidationFees += fee;
      emitClose(cl, cl.qty, cl.price, fee);
    });
    return finish();
  }

  // bankrupt: route part of the closes to the ADL queue when the insurance fund cannot cover the deficit
  const fund = book.venueFunds().insuranceFund;
  let uncovered = -equityAfter - fund; // USD the fund cannot cover
  const adlLegs: AdlEv[] = [];
  const gains = closes
    .map((cl) => ({
      cl,
      gain: cl.bankruptcyPrice === null ? 0 : (cl.bankruptcyPrice - cl.price) * cl.dir * cl.c,
    }))
    .filter((g) => g.gain > 0)
    .sort((a, b) => b.gain - a.gain);
  for (const { cl, gain } of gains) {
    if (!(uncovered > 0)) break;
    let want = Math.min(cl.qty, uncovered / gain);
    const bp = cl.bankruptcyPrice!;
    for (const cand of adlQueue(book, cl.symbol, cl.dir, account)) {
      if (!(want > 0)) break;
      const take = Math.min(Math.abs(cand.qty), want);
      want -= take;
      cl.adl += take;
      adlLegs.push(
        stamp({
          type: 'adl',
          ts,
          account: cand.account,
          symbol: cl.symbol,
          side: cl.dir > 0 ? 'buy' : 'sell',
          qty: take,
          price: bp,
        }),
      );
      const value = (cl.mark - bp) * -cl.dir * take * cl.c;
      ledger.add({
        ts,
        kind: 'adl-transfer',
        from: `account:${cand.account}`,
        to: who,
        amount: value,
        symbol: cl.symbol,
        qty: take,
        price: bp,
      });
    }
    uncovered -= cl.adl * gain;
  }
  for (const cl of closes) {
    if (cl.qty - cl.adl > 0) emitClose(cl, cl.qty - cl.adl, cl.price, 0);
    if (cl.adl > 0) emitClose(cl, cl.adl, cl.bankruptcyPrice!, 0, true);
  }
  let deficit = 0;
  let insuranceCovered = 0;
  let socialised = 0;
  const cash = scratch.snapshot(account, { prices: false })!.cash;
  if (cash < 0) {
    deficit = -cash;
    const ev: BankruptcyEv = stamp({ type: 'bankruptcy', ts, account, deficit });
    events.push(ev);
    insuranceCovered = Math.min(deficit, fund);
    socialised = deficit - insuranceCovered;
    ledger.add({ ts, kind: 'insurance-cover', from: 'insurance', to: who, amount: insuranceCovered });
    ledger.add({ ts, kind: 'socialised-loss', from: 'socialised', to: who, amount: socialised });
  }
  events.push(...adlLegs);
  const adlCovered = closes.reduce(
    (a, cl) =>
      a + (cl.bankruptcyPrice === null ? 0 : cl.adl * (cl.bankruptcyPrice - cl.price) * cl.dir * cl.c),
    0,
  );
  return finish({ deficit, insuranceCovered, socialised, adlCovered });

  function finish(b = { deficit: 0, insuranceCovered: 0, socialised: 0, adlCovered: 0 }): WaterfallResult {
    return {
      events,
      ledger: ledger.entries,
      marketFills,
      closedAll: scratch.snapshot(account, { prices: false })!.positions.length === 0,
      bankrupt: b.deficit > 0,
      liquidationFees,
      ...b,
    };
  }
}
