/**
 * The scenario file format (JSON, validated with zod): instruments and their contract terms, where their
 * prices come from (real bars or the fitted synthetic model), funding, book depth, the time window and the
 * trader population. Named scenarios live in `scenarios/NAME.json`; users write their own in the same form
 * (documented in scenarios/README.md). A file may first extend a template (`extends`, resolved in load.ts).
 */
import { z } from 'zod';
import { parseIsoUtcMs } from '../../events/iso-time.js';
import { TierSchema } from '../../events/schema.js';

const isoTime = z
  .string()
  .refine((s) => Number.isFinite(parseIsoUtcMs(s)), 'must be an ISO date, or date-time with its offset (Z)');
const positive = z.number().positive();
const fraction = z.number().min(0).max(1);

export const BarsPriceSource = z.object({
  kind: z.literal('bars'),
  /** bar files, finest first; relative to the scenario file, or `shared:NAME` for ../shared/data/market */
  files: z.array(z.string().min(1)).min(1),
});

export const SyntheticPriceSource = z.object({
  kind: z.literal('synthetic'),
  /** which fitted instrument of scenarios/fitted-params.json supplies GARCH, jumps and crash regime */
  fitted: z.string().min(1),
  /** USD */
  startPrice: positive,
});

export const InstrumentConfig = z.object({
  symbol: z.string().min(1),
  base: z.string().min(1),
  contractSize: positive.default(1),
  tiers: z.array(TierSchema).min(1),
  liquidationFeeRate: z.number().min(0).default(0.005),
  /** contracts: order quantities are multiples of it */
  lotSize: positive,
  /** USD: prices are multiples of it */
  tickSize: positive,
  prices: z.discriminatedUnion('kind', [BarsPriceSource, SyntheticPriceSource]),
  /** USD of resting liquidity within 1% of mid, per simulated account, at normal volatility */
  depthUsdPerAccount: positive.default(1500),
  /** bps of mid, at normal volatility */
  spreadBps: positive.default(1),
  /** share of the population trading it (weights, normalised over instruments) */
  popularity: positive.default(1),
});

export const FundingConfig = z.object({
  /** funding history file (timestamp,funding_rate), relative to the scenario or `shared:NAME` */
  file: z.string().min(1).optional(),
  /** ms between settlements */
  intervalMs: z
    .number()
    .int()
    .positive()
    .default(8 * 3_600_000),
  /**
   * when no history covers a settlement: premium model rate = base + k * (8 h log return), clamped. The
   * defaults are fitted to Binance BTCUSDT's 7,028 settlements of 2019-09..2026-02 against BTC's 8 h log return
   * (scenarios/README.md): median rate 0.0001, no relation to the return (correlation 0.006, least-squares k
   * 0.00007), every rate within +-0.003.
   */
  baseRate: z.number().default(0.0001),
  premiumK: z.number().default(0),
  clamp: positive.default(0.003),
});

export const BehaviourMix = z.object({
  trend: z.number().min(0).default(0.2),
  meanReversion: z.number().min(0).default(0.14),
  martingale: z.number().min(0).default(0.07),
  gambler: z.number().min(0).default(0.1),
  hedged: z.number().min(0).default(0.07),
  careful: z.number().min(0).default(0.22),
  withdrawer: z.number().min(0).default(0.07),
  marketMaker: z.number().min(0).default(0.02),
  cancelHeavy: z.number().min(0).default(0.11),
});

export const PopulationConfig = z.object({
  mix: BehaviourMix.default(BehaviourMix.parse({})),
  /** USD: median first deposit */
  medianCapital: positive.default(2500),
  /** Pareto tail index of capital (heavier tail as it falls) */
  capitalTailIndex: z.number().min(0.8).max(4).default(1.3),
  /** USD: cap on one account's capital */
  maxCapital: positive.default(5_000_000),
  /** multiplies every behaviour's leverage draw (the population's risk appetite) */
  leverageScale: positive.default(1),
  /** multiplies every trader's decision rate */
  activityScale: positive.default(1),
  /** accounts join at uniformly drawn times within this many hours of the start */
  joinHours: z.number().min(0).default(4),
  /** probability that a trader comes back (re-deposits) after being liquidated */
  comebackProbability: fraction.default(0.35),
});

export const ScheduledCrashConfig = z.object({
  /** ISO time at which the fall starts */
  at: isoTime,
  fallMinutes: z.number().int().positive(),
  /** total fall of the first instrument, fraction (0.2 = -20%) */
  fall: z.number().gt(0).lt(0.95),
  recoveryShare: fraction.default(0.5),
  recoveryMinutes: z.number().int().positive().default(60),
});

export const ScenarioSchema = z
  .object({
    name: z.string().min(1),
    description: z.string().default(''),
    start: isoTime,
    end: isoTime,
    instruments: z.array(InstrumentConfig).min(1),
    funding: FundingConfig.default(FundingConfig.parse({})),
    population: PopulationConfig.default(PopulationConfig.parse({})),
    /** USD of insurance fund per simulated account at the start */
    insuranceFundPerAccount: z.number().min(0).default(250),
    /** synthetic scenarios only: correlation matrix (instrument order) or "fitted" (from fitted-params) */
    correlation: z.union([z.literal('fitted'), z.array(z.array(z.number()))]).default('fitted'),
    /** synthetic scenarios only: whether the Markov crash regime of the fit is active */
    crashRegime: z.boolean().default(true),
    scheduledCrashes: z.array(ScheduledCrashConfig).default([]),
  })
  .superRefine((s, ctx) => {
    if (!(Date.parse(s.end) > Date.parse(s.start)))
      ctx.addIssue({ code: 'custom', path: ['end'], message: 'must be after start' });
    if (Date.parse(s.start) % 60_000 !== 0)
      ctx.addIssue({ code: 'custom', path: ['start'], message: 'must be on a whole minute' });
    const kinds = new Set(s.instruments.map((i) => i.prices.kind));
    if (kinds.size > 1)
      ctx.addIssue({
        code: 'custom',
        path: ['instruments'],
        message: 'all instruments must use the same price kind',
      });
    const symbols = new Set<string>();
    s.instruments.forEach((i, k) => {
      if (symbols.has(i.symbol))
        ctx.addIssue({ code: 'custom', path: ['instruments', k, 'symbol'], message: 'duplicate symbol' });
      symbols.add(i.symbol);
    });
  });

export type Scenario = z.infer<typeof ScenarioSchema>;
export type InstrumentConfig = z.infer<typeof InstrumentConfig>;
export type PopulationConfig = z.infer<typeof PopulationConfig>;
export type BehaviourMixConfig = z.infer<typeof BehaviourMix>;
export type FundingConfig = z.infer<typeof FundingConfig>;
