/**
 * fast-check generators for margin-core property tests: closed-system histories (every fill has both
 * sides in the book, so value is conserved) over two instruments with different tiers and contract sizes.
 */
import fc from 'fast-check';
import type { CanonicalEvent } from '../../src/events/schema.js';
import { MarginBook } from '../../src/margin/index.js';
import { instrument } from './fixtures.js';

export const SYMBOLS = ['BTC-PERP', 'ETH-PERP'] as const;
export const ACCOUNTS = ['a0', 'a1', 'a2', 'a3', 'a4'] as const;
export const START_MARKS: Record<string, number> = { 'BTC-PERP': 10_000, 'ETH-PERP': 500 };

export function setupEvents(): CanonicalEvent[] {
  return [
    instrument('BTC-PERP'),
    instrument('ETH-PERP', {
      contractSize: 0.1,
      liquidationFeeRate: 0.01,
      tiers: [
        { maxNotional: 2_000, imr: 0.05, mmr: 0.02 },
        { maxNotional: null, imr: 0.2, mmr: 0.08 },
      ],
    }),
    { type: 'mark', ts: 0, symbol: 'BTC-PERP', price: START_MARKS['BTC-PERP']! },
    { type: 'mark', ts: 0, symbol: 'ETH-PERP', price: START_MARKS['ETH-PERP']! },
  ];
}

export type Op =
  | { kind: 'deposit'; account: number; amount: number }
  | { kind: 'withdrawal'; account: number; amount: number }
  | {
      kind: 'trade';
      buyer: number;
      seller: number;
      symbol: number;
      qty: number;
      priceFactor: number;
      fee: number;
    }
  | { kind: 'mark'; symbol: number; factor: number }
  | { kind: 'funding'; symbol: number; rate: number };

const account = fc.integer({ min: 0, max: ACCOUNTS.length - 1 });
const symbol = fc.integer({ min: 0, max: SYMBOLS.length - 1 });
/** Uniform on [min, max] (fc.double favours edge values, which would starve the interesting middle). */
export const real = (min: number, max: number): fc.Arbitrary<number> =>
  fc.integer({ min: 0, max: 1_000_000 }).map((i) => min + ((max - min) * i) / 1_000_000);

export const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 2,
    arbitrary: fc.record({ kind: fc.constant('deposit' as const), account, amount: real(1, 5_000) }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant('withdrawal' as const), account, amount: real(1, 500) }),
  },
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant('trade' as const),
      buyer: account,
      seller: account,
      symbol,
      qty: fc.oneof(fc.integer({ min: 1, max: 40 }), real(0.01, 5)),
      priceFactor: real(0.98, 1.02),
      fee: real(0, 3),
    }),
  },
  {
    weight: 4,
    arbitrary: fc.record({ kind: fc.constant('mark' as const), symbol, factor: real(0.85, 1.15) }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant('funding' as const), symbol, rate: real(-0.003, 0.003) }),
  },
);

/** The canonical events of one op given the current book (marks), or [] when the op makes no sense. */
export function eventsOf(op: Op, book: MarginBook, ts: number): CanonicalEvent[] {
  switch (op.kind) {
    case 'deposit':
      return [{ type: 'deposit', ts, account: ACCOUNTS[op.account]!, amount: op.amount }];
    case 'withdrawal':
      return [{ type: 'withdrawal', ts, account: ACCOUNTS[op.account]!, amount: op.amount }];
    case 'trade': {
      if (op.buyer === op.seller) return [];
      const s = SYMBOLS[op.symbol]!;
      const price = book.markOf(s)! * op.priceFactor;
      const leg = (acct: number, side: 'buy' | 'sell', fee: number): CanonicalEvent => ({
        type: 'fill',
        ts,
        account: ACCOUNTS[acct]!,
        symbol: s,
        side,
        qty: op.qty,
        price,
        fee,
        liquidity: side === 'buy' ? 'taker' : 'maker',
      });
      return [leg(op.buyer, 'buy', op.fee), leg(op.seller, 'sell', -op.fee / 4)];
    }
    case 'mark': {
      const s = SYMBOLS[op.symbol]!;
      return [{ type: 'mark', ts, symbol: s, price: book.markOf(s)! * op.factor }];
    }
    case 'funding':
      return [{ type: 'funding', ts, symbol: SYMBOLS[op.symbol]!, rate: op.rate }];
  }
}

/** A book after applying the setup and the ops' events (no waterfall). */
export function bookAfter(
  ops: readonly Op[],
  opts?: ConstructorParameters<typeof MarginBook>[0],
): MarginBook {
  const book = new MarginBook(opts);
  for (const e of setupEvents()) book.apply(e);
  ops.forEach((op, i) => {
    for (const e of eventsOf(op, book, i + 1)) book.apply(e);
  });
  return book;
}

export const opsArb = fc.array(opArb, { minLength: 1, maxLength: 60 });

/** One account 'x' with collateral and positions on both instruments, and moved marks: a single book
 * whose leverage ranges from idle to past MM (for policy properties). */
export const leveragedBookArb: fc.Arbitrary<MarginBook> = fc
  .record({
    collateral: real(100, 50_000),
    btcQty: fc.oneof(real(-5, 5), fc.integer({ min: -5, max: 5 })),
    ethQty: fc.oneof(real(-300, 300), fc.integer({ min: -300, max: 300 })),
    btcMove: real(0.9, 1.1),
    ethMove: real(0.85, 1.15),
  })
  .map(({ collateral, btcQty, ethQty, btcMove, ethMove }) => {
    const book = new MarginBook();
    for (const e of setupEvents()) book.apply(e);
    book.apply({ type: 'deposit', ts: 1, account: 'x', amount: collateral });
    const legs: Array<[string, number]> = [
      ['BTC-PERP', btcQty],
      ['ETH-PERP', ethQty],
    ];
    for (const [symbol, qty] of legs) {
      if (qty === 0) continue;
      const price = START_MARKS[symbol]!;
      book.apply({
        type: 'fill',
        ts: 2,
        account: 'x',
        symbol,
        side: qty > 0 ? 'buy' : 'sell',
        qty: Math.abs(qty),
        price,
        fee: 0,
        liquidity: 'taker',
      });
    }
    book.apply({ type: 'mark', ts: 3, symbol: 'BTC-PERP', price: START_MARKS['BTC-PERP']! * btcMove });
    book.apply({ type: 'mark', ts: 3, symbol: 'ETH-PERP', price: START_MARKS['ETH-PERP']! * ethMove });
    return book;
  });
