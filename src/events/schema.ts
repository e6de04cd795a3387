/**
 * The canonical event format (../shared/spec/events.md, the contract): one zod schema per event type,
 * a discriminated union over `type`, and the TypeScript types derived from them. Money is USD, quantities
 * are contracts, `ts` is integer epoch milliseconds (UTC).
 */
import { z } from 'zod';

const finite = z.number().refine(Number.isFinite, 'must be a finite number');
const positive = finite.refine((v) => v > 0, 'must be > 0');
const nonNegative = finite.refine((v) => v >= 0, 'must be >= 0');
const name = z.string().min(1, 'must be a non-empty string');
const side = z.enum(['buy', 'sell']);

const base = {
  /** epoch ms, UTC */
  ts: z
    .number()
    .int('must be an integer (epoch ms)')
    .refine((v) => v >= 0, 'must be >= 0 (epoch ms)'),
  id: z.string().max(128, 'must be at most 128 characters').optional(),
};

export const TierSchema = z.object({
  /** USD; null = unbounded (last tier only) */
  maxNotional: positive.nullable(),
  /** initial margin rate, fraction of notional */
  imr: finite,
  /** maintenance margin rate, fraction of notional */
  mmr: finite,
});

export const InstrumentEvent = z
  .object({
    type: z.literal('instrument'),
    ...base,
    symbol: name,
    base: name,
    /** units of base per contract */
    contractSize: positive.default(1),
    tiers: z.array(TierSchema).min(1, 'must be a non-empty array'),
    /** fraction of the closed notional paid to the insurance fund on a liquidation */
    liquidationFeeRate: nonNegative.default(0.005),
  })
  .superRefine((ev, ctx) => {
    ev.tiers.forEach((tier, i) => {
      if (!(tier.mmr > 0))
        ctx.addIssue({ code: 'custom', path: ['tiers', i, 'mmr'], message: 'must be > 0' });
      if (!(tier.mmr < tier.imr))
        ctx.addIssue({ code: 'custom', path: ['tiers', i, 'mmr'], message: 'must be < imr' });
      if (!(tier.imr <= 1))
        ctx.addIssue({ code: 'custom', path: ['tiers', i, 'imr'], message: 'must be <= 1' });
      const last = i === ev.tiers.length - 1;
      if (tier.maxNotional === null && !last)
        ctx.addIssue({
          code: 'custom',
          path: ['tiers', i, 'maxNotional'],
          message: 'null (unbounded) is allowed on the last tier only',
        });
      const prev = i > 0 ? ev.tiers[i - 1] : undefined;
      if (
        prev &&
        prev.maxNotional !== null &&
        tier.maxNotional !== null &&
        !(tier.maxNotional > prev.maxNotional)
      )
        ctx.addIssue({
          code: 'custom',
          path: ['tiers', i, 'maxNotional'],
          message: 'tiers must be sorted by maxNotional ascending',
        });
    });
  });

export const MarkEvent = z.object({ type: z.literal('mark'), ...base, symbol: name, price: positive });

export const TradeEvent = z.object({
  type: z.literal('trade'),
  ...base,
  symbol: name,
  price: positive,
  qty: positive,
  aggressor: side,
});

export const BookEvent = z
  .object({
    type: z.literal('book'),
    ...base,
    symbol: name,
    bid: positive,
    ask: positive,
    /** contracts resting within 1% of mid */
    bidDepth: nonNegative,
    askDepth: nonNegative,
  })
  .superRefine((ev, ctx) => {
    if (!(ev.bid <= ev.ask)) ctx.addIssue({ code: 'custom', path: ['ask'], message: 'must be >= bid' });
  });

export const FundingEvent = z.object({ type: z.literal('funding'), ...base, symbol: name, rate: finite });

export const DepositEvent = z.object({
  type: z.literal('deposit'),
  ...base,
  account: name,
  amount: positive,
});
export const WithdrawalEvent = z.object({
  type: z.literal('withdrawal'),
  ...base,
  account: name,
  amount: positive,
});

export const OrderEvent = z.object({
  type: z.literal('order'),
  ...base,
  account: name,
  orderId: name,
  symbol: name,
  side,
  qty: positive,
  /** null = market order */
  price: positive.nullable(),
  reduceOnly: z.boolean().default(false),
});

export const CancelEvent = z.object({ type: z.literal('cancel'), ...base, account: name, orderId: name });

export const FillEvent = z.object({
  type: z.literal('fill'),
  ...base,
  account: name,
  symbol: name,
  side,
  qty: positive,
  price: positive,
  /** USD; negative is a rebate */
  fee: finite.default(0),
  liquidity: z.enum(['maker', 'taker']),
  orderId: name.optional(),
});

export const LiquidationEvent = z.object({
  type: z.literal('liquidation'),
  ...base,
  account: name,
  symbol: name,
  side,
  qty: positive,
  price: positive,
  /** USD, the liquidation penalty, paid to the insurance fund */
  fee: nonNegative,
});

export const AdlEvent = z.object({
  type: z.literal('adl'),
  ...base,
  account: name,
  symbol: name,
  side,
  qty: positive,
  price: positive,
});

export const BankruptcyEvent = z.object({
  type: z.literal('bankruptcy'),
  ...base,
  account: name,
  /** USD of negative equity left after liquidation */
  deficit: positive,
});

export const EventSchema = z.discriminatedUnion('type', [
  InstrumentEvent,
  MarkEvent,
  TradeEvent,
  BookEvent,
  FundingEvent,
  DepositEvent,
  WithdrawalEvent,
  OrderEvent,
  CancelEvent,
  FillEvent,
  LiquidationEvent,
  AdlEvent,
  BankruptcyEvent,
]);

export type Tier = z.infer<typeof TierSchema>;
export type CanonicalEvent = z.infer<typeof EventSchema>;
/** What a producer writes: defaults may be omitted. */
export type CanonicalEventInput = z.input<typeof EventSchema>;
export type EventType = CanonicalEvent['type'];
export type EventOf<T extends EventType> = Extract<CanonicalEvent, { type: T }>;

export type InstrumentEv = EventOf<'instrument'>;
export type MarkEv = EventOf<'mark'>;
export type TradeEv = EventOf<'trade'>;
export type BookEv = EventOf<'book'>;
export type FundingEv = EventOf<'funding'>;
export type DepositEv = EventOf<'deposit'>;
export type WithdrawalEv = EventOf<'withdrawal'>;
export type OrderEv = EventOf<'order'>;
export type CancelEv = EventOf<'cancel'>;
export type FillEv = EventOf<'fill'>;
export type LiquidationEv = EventOf<'liquidation'>;
export type AdlEv = EventOf<'adl'>;
export type BankruptcyEv = EventOf<'bankruptcy'>;

export const EVENT_TYPES = [
  'instrument',
  'mark',
  'trade',
  'book',
  'funding',
  'deposit',
  'withdrawal',
  'order',
  'cancel',
  'fill',
  'liquidation',
  'adl',
  'bankruptcy',
] as const satisfies readonly EventType[];

/** Events that name an instrument and so require it to be declared first. */
export function eventSymbol(ev: CanonicalEvent): string | undefined {
  return 'symbol' in ev && ev.type !== 'instrument' ? ev.symbol : undefined;
}
