/**
 * The execution job: what the evaluator enqueues and a worker executes. One zod schema (a worker fails an
 * invalid payload with UnrecoverableError instead of retrying it), and the job id derived from account,
 * kind and decision epoch, so that a decision enqueued twice, by one evaluator or after a failover, runs
 * once.
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';

export const QUEUES = { liquidate: 'liquidate', deleverage: 'deleverage', restrict: 'restrict' } as const;
export type QueueKind = keyof typeof QUEUES;
/** the queues of order-executing jobs (`restrict` carries no orders) */
export type ExecutionKind = Exclude<QueueKind, 'restrict'>;

const finite = z.number().refine(Number.isFinite, 'must be finite');
const positive = finite.refine((v) => v > 0, 'must be > 0');

export const MarketInputSchema = z.object({
  mark: positive, // USD
  bid: positive.optional(), // USD
  ask: positive.optional(), // USD
  bidDepth: finite.optional(), // contracts within 1% of mid
  askDepth: finite.optional(), // contracts within 1% of mid
  contractSize: positive, // base units per contract
  liquidationFeeRate: finite, // fraction of notional
});
export type MarketInput = z.infer<typeof MarketInputSchema>;

export const OrderSchema = z.object({
  symbol: z.string().min(1),
  side: z.enum(['buy', 'sell']),
  qty: positive, // contracts
  notional: finite, // USD at the mark
  /** contracts, signed: the position this order reduces, at the decision's epoch */
  positionQty: finite,
});

export const ExecutionJobSchema = z.object({
  kind: z.enum(['liquidate', 'deleverage']),
  account: z.string().min(1),
  /** the account's position version when decided: decisions at one epoch share a job */
  epoch: z.number().int().min(0),
  /** ms, event time of the decision */
  decidedAt: z.number().int(),
  orders: z.array(OrderSchema).min(1),
  market: z.record(z.string(), MarketInputSchema),
  decision: z.object({
    action: z.enum(['LIQUIDATE', 'REDUCE']),
    rule: z.string(),
    pd: finite.nullable(),
    equity: finite, // USD
    mm: finite, // USD
    im: finite, // USD
    /** equity / MM; null when infinite */
    marginRatio: finite.nullable(),
    equityAfter: finite, // USD, the policy's estimate
    mmAfter: finite, // USD, the policy's estimate
    reasons: z.array(z.string()),
  }),
  modelVersion: z.string().nullable(),
});
export type ExecutionJob = z.infer<typeof ExecutionJobSchema>;

/**
 * A reduce-only restriction turning on or off for one account. `version` counts the account's
 * restriction changes (odd = on, even = off, from the evaluator's replay of the log): the job id derives
 * from it, and a venue applies a version only if it is newer than the last one it applied for the account.
 */
export const RestrictJobSchema = z
  .object({
    kind: z.literal('restrict'),
    account: z.string().min(1),
    reduceOnly: z.boolean(),
    /** the account's restriction version: 1, 2, ... (odd turns it on, even lifts it) */
    version: z.number().int().min(1),
    /** the account's position version when decided */
    epoch: z.number().int().min(0),
    /** ms, event time of the change */
    decidedAt: z.number().int(),
    /** why: `pd-reduce-tier` (on); `signal-cleared`, `hold-elapsed` (off); `reconciled` (restart disagreed with the stored state) */
    reason: z.enum(['pd-reduce-tier', 'signal-cleared', 'hold-elapsed', 'reconciled']),
    /** the pd of the deciding evaluation; null for a lift by the hold sweep or without a model */
    pd: finite.nullable(),
    modelVersion: z.string().nullable(),
  })
  .refine((j) => j.reduceOnly === (j.version % 2 === 1), {
    message: 'an odd version turns the restriction on, an even one lifts it',
    path: ['version'],
  });
export type RestrictJob = z.infer<typeof RestrictJobSchema>;

/** Any job the evaluator enqueues. */
export type ActionJob = ExecutionJob | RestrictJob;

/** The job id of an action job (epoch for executions, restriction version for `restrict`). */
export function jobIdOf(job: ActionJob): string {
  return job.kind === 'restrict'
    ? jobIdFor('restrict', job.account, job.version)
    : jobIdFor(job.kind, job.account, job.epoch);
}

/** `liquidate-a%3A1-7`: BullMQ ids may not contain ':' nor be integers, so the account is URI-encoded. */
export function jobIdFor(kind: QueueKind, account: string, epoch: number): string {
  return `${kind}-${encodeURIComponent(account)}-${epoch}`;
}

/**
 * How the failure reason of a job that needs an operator begins: the venue executed (answered 2xx) but
 * its fills cannot be recorded as they are. Such a job fails at once, keeps its reservation, and is not
 * retried by a later decision of the same epoch (a retry would get the same answer).
 */
export const NEEDS_OPERATOR = 'needs an operator: ';

/** The order id an early reduction's fills carry (liquidation events have no order id). */
export const orderIdFor = (jobId: string): string => `preempt-${jobId}`.slice(0, 256);

/**
 * Event id of fill `i` of a job (<= 128 chars as the spec requires; very long account names fall back
 * to a hash of the job id). The same id on a retry makes the log drop the second recording.
 */
export function execEventId(jobId: string, i: number): string {
  const plain = `exec-${jobId}-${i}`;
  return plain.length <= 128
    ? plain
    : `exec-h${createHash('sha256').update(jobId).digest('hex').slice(0, 40)}-${i}`;
}

/** The job id an executed fill came from (undefined for hashed ids and for others' events). */
export function jobIdOfEvent(eventId: string | undefined): string | undefined {
  const m = eventId ? /^exec-(?!h[a-f0-9]{40}-)(.+)-\d+$/.exec(eventId) : null;
  return m?.[1];
}
