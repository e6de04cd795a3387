/**
 * The HTTP contract: zod schemas of every request and response body. Routes validate with them and the
 * OpenAPI document is generated from them.
 */
import { z } from 'zod';
import { EventSchema } from '../../events/schema.js';
import { ERROR_CODES } from '../errors.js';

export const ErrorBodySchema = z
  .object({
    code: z.enum(Object.keys(ERROR_CODES) as [keyof typeof ERROR_CODES, ...(keyof typeof ERROR_CODES)[]]),
    message: z.string(),
    requestId: z.string(),
  })
  .catchall(z.unknown());

export const DECISIONS = ['LIQUIDATE', 'REDUCE', 'WATCH', 'HEALTHY'] as const;
export const DecisionSchema = z.enum(DECISIONS);
export type DecisionKind = z.infer<typeof DecisionSchema>;

export const ContributionSchema = z.object({
  feature: z.string(),
  /** change in pd when the feature is set to its neutral value (positive = pushed pd up) */
  deltaPd: z.number(),
});

export const ReductionSchema = z.object({
  symbol: z.string(),
  side: z.enum(['buy', 'sell']),
  /** contracts to close */
  qty: z.number(),
});

export const PositionViewSchema = z.object({
  symbol: z.string(),
  /** contracts, signed (long > 0) */
  qty: z.number(),
  avgEntry: z.number().describe('USD'),
  mark: z.number().describe('USD'),
  notional: z.number().describe('USD'),
  liquidationPrice: z.number().nullable().describe('USD'),
});

export const RiskViewSchema = z.object({
  account: z.string(),
  /** calibrated probability of default over the model horizon; null = rules only (no model) */
  pd: z.number().nullable(),
  /** equity / MM; null when the account has no position (infinite) */
  marginRatio: z.number().nullable(),
  equity: z.number().describe('USD'),
  mm: z.number().describe('USD, maintenance margin'),
  im: z.number().describe('USD, initial margin'),
  freeCollateral: z.number().describe('USD'),
  decision: DecisionSchema,
  reasons: z.array(z.string()),
  reductions: z.array(ReductionSchema),
  positions: z.array(PositionViewSchema),
  topFeatures: z
    .array(ContributionSchema)
    .describe('features that pushed the pd up most (non-healthy accounts)'),
  modelVersion: z.string().nullable(),
  /** the account's position version: decisions at one epoch share one job per queue */
  epoch: z.number().int(),
  reduceOnly: z
    .boolean()
    .describe(
      'restricted to reducing exposure at the venue (pd in the armed reduce tier, or held after going flat)',
    ),
  reduceOnlyUntil: z
    .number()
    .int()
    .nullable()
    .describe(
      'event-time ms when the hold of a flat restricted account lapses; null while it holds a position (lifted when the signal clears) or is unrestricted',
    ),
  asOf: z.number().int().describe('epoch ms of the last event applied'),
  evaluatedAt: z.number().int().describe('epoch ms (wall clock) of the evaluation'),
});
export type RiskView = z.infer<typeof RiskViewSchema>;

export const AccountParamsSchema = z.object({ id: z.string().min(1).max(256) });

export const RiskQueryBodySchema = z.object({
  accounts: z.array(z.string().min(1).max(256)).min(1).max(10_000, 'at most 10,000 accounts per query'),
});
export const RiskQueryResponseSchema = z.object({
  results: z.array(RiskViewSchema),
  /** accounts with no evaluation yet */
  missing: z.array(z.string()),
});

export const AtRiskQuerySchema = z.object({
  minPd: z.coerce.number().min(0).max(1).optional().describe('default: PREEMPT_AT_RISK_MIN_PD'),
  limit: z.coerce.number().int().min(1).max(10_000).default(100),
});
export const AtRiskResponseSchema = z.object({
  minPd: z.number(),
  items: z.array(z.object({ account: z.string(), pd: z.number() })),
});

export const ScoreBodySchema = z
  .object({
    /** feature vectors in the model's feature order */
    vectors: z.array(z.array(z.number())).max(100_000).optional(),
    /** feature vectors by name (every feature of the model required) */
    features: z.array(z.record(z.string(), z.number())).max(100_000).optional(),
    /** an account snapshot as canonical events: replayed through the same feature code, then scored */
    history: z
      .object({
        events: z.array(z.unknown()).min(1).max(100_000),
        accounts: z.array(z.string()).max(10_000).optional(),
        /** epoch ms; default the last event's ts */
        at: z.number().int().optional(),
      })
      .optional(),
    /** also return the top k contributing features of each row */
    explain: z.number().int().min(0).max(50).default(0),
  })
  .refine((b) => [b.vectors, b.features, b.history].filter((x) => x !== undefined).length === 1, {
    message: 'give exactly one of vectors, features or history',
  });
export const ScoreResponseSchema = z.object({
  modelVersion: z.string(),
  schemaHash: z.string(),
  /** account names for `history` input; row indexes otherwise */
  rows: z.array(z.string()),
  pd: z.array(z.number()),
  explanations: z.array(z.array(ContributionSchema)).optional(),
});

export const ModelInfoSchema = z.object({
  /** rules-only: no model is loaded, or the latest scoring with the loaded one failed (`scoreError`) */
  mode: z.enum(['model', 'rules-only']),
  version: z.string().nullable(),
  schemaHash: z.string().nullable(),
  horizonMs: z.number().nullable(),
  backend: z.string().nullable(),
  featureNames: z.array(z.string()),
  /** the network's files matched the digests metadata.json records; false: an older model without them */
  filesVerified: z.boolean().nullable(),
  dir: z.string(),
  /** why the model is not in use (`scoring failed: ...` while scoring fails), or why the latest reload failed */
  error: z.string().optional(),
  /** while scoring with the loaded model fails: until a scoring succeeds or a model is (re)loaded */
  scoreError: z
    .object({
      message: z.string().describe('the latest failure'),
      since: z.number().int().describe('epoch ms of the first failure in a row'),
      failures: z.number().int().describe('scoring calls failed in a row'),
    })
    .optional(),
});

export const IngestQuerySchema = z.object({
  partial: z
    .enum(['true', 'false', '1', '0'])
    .optional()
    .transform((v) => v === 'true' || v === '1')
    .describe('apply the valid events and list the invalid ones instead of rejecting the batch'),
});
export const IngestBodyDoc = z.array(EventSchema).describe('a JSON array, or NDJSON (one event per line)');
export const IngestResponseSchema = z.object({
  accepted: z.number().int(),
  duplicates: z.number().int(),
  rejected: z.array(
    z.object({
      index: z.number().int(),
      line: z.number().int().optional(),
      field: z.string(),
      reason: z.string(),
    }),
  ),
  /** stream entry ids of the first and last accepted events */
  firstId: z.string().nullable(),
  lastId: z.string().nullable(),
});

const U64_MAX = (1n << 64n) - 1n;
/** a Redis stream id usable as an exclusive upper bound: both parts fit 64 bits, and it is not 0-0 */
function isExclusiveUpperStreamId(id: string): boolean {
  if (!/^\d+-\d+$/.test(id)) return true; // the format check above reports it (zod runs every check)
  const [ms, seq] = id.split('-').map((p) => BigInt(p));
  if (ms === undefined || seq === undefined || ms > U64_MAX || seq > U64_MAX) return false;
  return ms > 0n || seq > 0n;
}

export const ActionsQuerySchema = z.object({
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  /** stream id: return entries older than this (pagination) */
  before: z
    .string()
    .regex(/^\d+-\d+$/, 'must be a stream id like 1700000000000-0')
    .refine(
      isExclusiveUpperStreamId,
      'must be a stream id above 0-0 whose two parts are each at most 2^64 - 1',
    )
    .optional(),
  account: z.string().optional(),
});
export const AuditEntrySchema = z.object({
  id: z.string().describe('audit stream entry id'),
  kind: z.enum(['decision', 'restriction', 'execution', 'failure', 'settled']),
  account: z.string(),
  jobId: z.string(),
  data: z.record(z.string(), z.unknown()),
});
export const ActionsResponseSchema = z.object({
  items: z.array(AuditEntrySchema),
  next: z.string().nullable(),
});

export const HealthSchema = z.object({ status: z.literal('ok') });
export const ReadySchema = z.object({
  ready: z.boolean(),
  redis: z.boolean(),
  model: z.enum(['model', 'rules-only']),
  detail: z.record(z.string(), z.unknown()).optional(),
});
