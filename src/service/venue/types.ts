/**
 * Where reductions are executed. Two implementations side by side: the simulated venue (a depth and
 * slippage model, for `preempt start`, tests and backtests) and the webhook venue (signed POSTs to the
 * venue's own endpoint). A venue reports fills; the worker records them back as events.
 */
import type { MarketInput } from '../queue/job.js';

export interface ExecutionRequest {
  /** the job id, or `<jobId>#g<n>` after retired generations: the venue must execute a key at most once */
  idempotencyKey: string;
  kind: 'liquidate' | 'deleverage';
  account: string;
  /** reduce-only orders */
  orders: { symbol: string; side: 'buy' | 'sell'; qty: number }[];
  /** ms, event time at which the venue executes: the decision's, or the latest market event seen since */
  decidedAt: number;
  /** market inputs at decision time, per symbol */
  market: Record<string, MarketInput>;
}

export interface VenueFill {
  symbol: string;
  side: 'buy' | 'sell';
  qty: number; // contracts
  price: number; // USD
  /** USD: trading fee, or the liquidation penalty for a liquidation */
  fee: number;
  /** ms, event time of the fill */
  ts: number;
}

export interface ExecutionResult {
  venue: string;
  fills: VenueFill[];
  /** the venue's own reference, when it gives one */
  reference?: string;
}

/**
 * A reduce-only restriction turning on or off. The venue applies it only if `version` is newer than the
 * last version it applied for the account (an older message arriving late is acknowledged and ignored),
 * and at most once per `idempotencyKey`. While on, it refuses orders that would increase the account's
 * position and cancels its resting orders that would.
 */
export interface RestrictionRequest {
  /** the job id */
  idempotencyKey: string;
  account: string;
  reduceOnly: boolean;
  /** the account's restriction version (odd = on); increases with every change */
  version: number;
  /** the account's position version when decided */
  epoch: number;
  /** ms, event time of the change */
  decidedAt: number;
  reason: string;
}

export interface RestrictionResult {
  venue: string;
  /** false: the venue already had this or a newer version (nothing changed) */
  applied: boolean;
  reference?: string;
}

export interface ExecutionVenue {
  readonly name: string;
  /**
   * Execute `req`. A venue that sends a body sends `body` when given (the bytes kept from the first
   * attempt under this idempotency key, see `executionBody`), else the body of `req`.
   */
  execute(req: ExecutionRequest, body?: string): Promise<ExecutionResult>;
  /** restrict an account to reduce-only, or lift it (`body` as for `execute`) */
  setReduceOnly(req: RestrictionRequest, body?: string): Promise<RestrictionResult>;
  /**
   * The exact bytes this venue sends for `req` (venues that send a body). The worker keeps them before the
   * first send and passes them to every later attempt under the same idempotency key.
   */
  executionBody?(req: ExecutionRequest): string;
  /** the same for a restriction */
  restrictionBody?(req: RestrictionRequest): string;
  close?(): Promise<void>;
}

/**
 * The venue refused the request for good (bad order, unknown account): retrying cannot help. The venue did
 * not execute it (counted as a definite non-execution, like VenueUnavailableError). A venue throws it only
 * when that is certain (the webhook: a 4xx other than 408 and 429, which its endpoint must answer only for a
 * request it did not execute).
 */
export class VenueRejectedError extends Error {
  readonly code = 'VENUE_REJECTED';
  override name = 'VenueRejectedError';
}

/**
 * The venue's endpoint answered a redirect (3xx). It is never followed: a POST to an execution endpoint
 * must not be replayed to another URL. A configuration error, not retried: the job fails for an operator.
 * The endpoint answered, and what it did is not known (a 303 is the usual answer of an endpoint that has
 * processed a POST), so the job keeps its reservation.
 */
export class VenueRedirectError extends Error {
  readonly code = 'VENUE_REDIRECT';
  override name = 'VenueRedirectError';
  constructor(
    message: string,
    /** the HTTP status, 300-399 */
    readonly status: number,
    /** the Location header, if any */
    readonly location: string | null,
  ) {
    super(message);
  }
}

/**
 * The venue certainly did not execute the request and may take it later: nothing was sent (no connection
 * made: refused, DNS, TLS before the request was written) or the venue turned it away before processing it
 * (the webhook: a 429). The job is retried with backoff; a job whose every send ended in this (or a refusal)
 * gives its reservation back when it fails for good. A venue throws it only when that is certain: an answer
 * that does not say the request was not executed (any 5xx, a proxy's 503 included, a 408, a timeout) is a
 * VenueOutcomeUnknownError, and any other error counts as possibly executed too.
 */
export class VenueUnavailableError extends Error {
  readonly code = 'VENUE_UNAVAILABLE';
  override name = 'VenueUnavailableError';
}

/**
 * The venue may have executed, but what it did is unknown: it answered 2xx with an answer that cannot be
 * used (`answered`), or the request was sent and no answer says it was not executed (a timeout, the
 * connection reset or closed after sending, any 5xx, a 408; `answered` false). Retryable under the same
 * idempotency key (the venue executes a key at most once, so a retry gets the same execution's answer), and
 * the job's reservation is never given back, nor its request retired: the position may already be reduced.
 */
export class VenueOutcomeUnknownError extends Error {
  readonly code = 'VENUE_OUTCOME_UNKNOWN';
  override name = 'VenueOutcomeUnknownError';
  constructor(
    message: string,
    /** true: the venue answered 2xx (unusably); false: sent, and not answered 2xx (no answer, 5xx, 408) */
    readonly answered = true,
  ) {
    super(message);
  }
}
