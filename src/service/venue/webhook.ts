/**
 * The webhook venue: POSTs each reduction to the venue's endpoint as JSON, signed with HMAC-SHA256 over
 * `timestamp.body` (header `X-Preempt-Signature: t=<ms>,v1=<hex>`) and carrying the job id as
 * `Idempotency-Key`, so a retried job never executes twice at a venue that honours the key. The answer
 * lists the fills. What counts as not executed is only what is certain: a connection that could not be made
 * (refused, DNS, connect timeout, a TLS failure before the request was written: nothing was sent) and a 429
 * (VenueUnavailableError, retried by the queue), and a 4xx other than 408 and 429 (a permanent refusal,
 * VenueRejectedError). The endpoint must answer 4xx (408 aside) only for a request it did not execute, and 429
 * only before processing it. Everything else is an unknown outcome (VenueOutcomeUnknownError: the venue may
 * have executed): any 5xx (a proxy answers 503 or 502 after forwarding), a 408, a 2xx whose body is not
 * `{fills: [...]}`, a timeout, and a connection reset or closed once the request may have been sent. Those
 * are retried too, under the same key, so the venue answers with that execution. A fill without `ts` is
 * stamped with the request's event time (`decidedAt`), never this process's clock. Redirects are not
 * followed (a POST to an execution endpoint is never replayed to another URL): any 3xx throws
 * VenueRedirectError, a configuration error the job fails with for an operator.
 * The body is a pure function of the request (`executionBody`, `restrictionBody`); the worker keeps the
 * bytes of the first attempt and passes them to every retry, so one idempotency key always carries one body.
 * What the worker does with a failure depends on its class: VenueUnavailableError and VenueRejectedError
 * say the venue did not execute (nothing sent, a 429, a refusal); everything else may have.
 *
 * Reduce-only restrictions go to the same endpoint, signed the same way, as
 * `{kind: 'restrict', idempotencyKey, account, reduceOnly, version, epoch, decidedAt, reason}`; any 2xx
 * acknowledges (an optional `{applied, reference}` answer is recorded). The venue must apply a version only
 * if it is newer than the last it applied for the account.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import {
  type ExecutionRequest,
  type ExecutionResult,
  type ExecutionVenue,
  type RestrictionRequest,
  type RestrictionResult,
  VenueOutcomeUnknownError,
  VenueRedirectError,
  VenueRejectedError,
  VenueUnavailableError,
} from './types.js';

/**
 * Whether an HTTP status (not 2xx, not 3xx) leaves open that the request was executed: every 5xx (a
 * gateway's 502/504, and a proxy's 503 or 500 after forwarding, as well as the venue's own) and 408.
 */
function mayHaveExecutedOn(status: number): boolean {
  return status >= 500 || status === 408;
}
export interface WebhookVenueOptions {
  url: string;
  secret: string;
  /** ms */
  timeoutMs: number;
}

const FillSchema = z.object({
  symbol: z.string().min(1),
  side: z.enum(['buy', 'sell']),
  qty: z.number().positive(),
  price: z.number().positive(),
  fee: z.number().refine(Number.isFinite).default(0),
  ts: z.number().int().optional(),
});
const AnswerSchema = z.object({ fills: z.array(FillSchema), reference: z.string().optional() });
const RestrictAnswerSchema = z.object({ applied: z.boolean().optional(), reference: z.string().optional() });

/**
 * `cause.code`s of a fetch that failed before the request was sent: no connection was made (refused,
 * unreachable, DNS, undici's connect timeout) or the TLS handshake failed. The venue cannot have executed.
 */
const NOT_SENT_CODES = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EAI_FAIL',
  'EAI_NONAME',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EHOSTDOWN',
  'ENETDOWN',
  'EADDRNOTAVAIL',
  'UND_ERR_CONNECT_TIMEOUT',
  'CERT_HAS_EXPIRED',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/**
 * Whether a failed fetch may have delivered the request. Only what certainly stopped it before it was
 * written counts as not sent: a `cause.code` of NOT_SENT_CODES, an invalid URL, or fetch's refusal of a
 * blocked port ("bad port"). A timeout (AbortSignal: it cannot tell whether the request went out), a socket
 * error with any other code (ECONNRESET, EPIPE, ETIMEDOUT, UND_ERR_SOCKET, ...) and any error this does not
 * recognise may have: the venue may have executed (the reservation is kept; an unknown error errs that
 * way). (fetch's "redirect count exceeded" cannot arise: redirects are not followed.)
 */
export function mayHaveSent(e: unknown): boolean {
  const name = (e as { name?: unknown } | null)?.name;
  if (name === 'TimeoutError' || name === 'AbortError') return true;
  const cause = (e as { cause?: { code?: unknown; message?: unknown } } | null)?.cause;
  const code = cause?.code;
  if (typeof code === 'string') return !(NOT_SENT_CODES.has(code) || code === 'ERR_INVALID_URL');
  return cause?.message !== 'bad port';
}

export function signWebhook(secret: string, timestampMs: number, body: string): string {
  const mac = createHmac('sha256', secret).update(`${timestampMs}.${body}`).digest('hex');
  return `t=${timestampMs},v1=${mac}`;
}

/** For venues (and tests): check a signature header against the raw body; `toleranceMs` bounds replay. */
export function verifyWebhook(
  secret: string,
  header: string,
  body: string,
  nowMs: number,
  toleranceMs = 300_000,
): boolean {
  const m = /^t=(\d+),v1=([a-f0-9]{64})$/.exec(header);
  if (!m?.[1] || !m[2]) return false;
  const t = Number(m[1]);
  if (Math.abs(nowMs - t) > toleranceMs) return false;
  const expected = Buffer.from(signWebhook(secret, t, body).slice(-64), 'hex');
  return timingSafeEqual(expected, Buffer.from(m[2], 'hex'));
}

export class WebhookVenue implements ExecutionVenue {
  readonly name = 'webhook';
  constructor(private readonly opts: WebhookVenueOptions) {}

  restrictionBody(req: RestrictionRequest): string {
    return JSON.stringify({
      kind: 'restrict',
      idempotencyKey: req.idempotencyKey,
      account: req.account,
      reduceOnly: req.reduceOnly,
      version: req.version,
      epoch: req.epoch,
      decidedAt: req.decidedAt,
      reason: req.reason,
    });
  }

  async setReduceOnly(req: RestrictionRequest, body = this.restrictionBody(req)): Promise<RestrictionResult> {
    const text = await this.post(req.idempotencyKey, body, 'restriction');
    let answer: z.infer<typeof RestrictAnswerSchema> = {};
    try {
      answer = text.trim() === '' ? {} : RestrictAnswerSchema.parse(JSON.parse(text));
    } catch {
      answer = {}; // a 2xx acknowledges; the answer's body is optional
    }
    const result: RestrictionResult = { venue: this.name, applied: answer.applied ?? true };
    if (answer.reference) result.reference = answer.reference;
    return result;
  }

  /**
   * POST a signed body. A failure before anything was sent, and a 429, throw VenueUnavailableError; other
   * 4xx (but 408) VenueRejectedError; a failure once the request may have been sent (a timeout, a reset
   * connection, any 5xx, a 408, a 2xx whose body cannot be read) throws VenueOutcomeUnknownError (`answered`
   * false without a 2xx); a 3xx throws VenueRedirectError (not followed, so fetch never replays the POST
   * elsewhere nor fails with "redirect count exceeded").
   */
  private async post(key: string, body: string, what: string): Promise<string> {
    const now = Date.now();
    let res: Response;
    try {
      res = await fetch(this.opts.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'idempotency-key': key,
          'x-preempt-signature': signWebhook(this.opts.secret, now, body),
        },
        body,
        // never follow: a 307/308 would replay the POST to the Location, a 301/302/303 turn it into a GET
        redirect: 'manual',
        signal: AbortSignal.timeout(this.opts.timeoutMs),
      });
    } catch (e) {
      const why = describe(e);
      if (mayHaveSent(e))
        throw new VenueOutcomeUnknownError(
          `webhook: no answer to the ${what}, which may have been sent: ${why}`,
          false,
        );
      throw new VenueUnavailableError(`webhook unreachable: ${why}`);
    }
    if (res.status >= 300 && res.status < 400) {
      const location = res.headers.get('location');
      await res.body?.cancel().catch(() => {});
      throw new VenueRedirectError(
        `webhook answered ${res.status} to the ${what}, a redirect to ${location === null ? '(no Location)' : JSON.stringify(location.slice(0, 300))}: not followed (a POST to an execution endpoint is never replayed elsewhere); the configured venue URL must be the endpoint itself`,
        res.status,
        location,
      );
    }
    // any 5xx or a 408: the request reached the venue, or a proxy that forwarded it; either may answer so
    // after the venue executed it (a 500 from a handler that failed once the order was placed, a proxy's 503
    // or 504 when the venue answered too late), so nothing says it was not executed
    if (mayHaveExecutedOn(res.status)) {
      const detail = await res.text().then(
        (t) => (t === '' ? '' : `: ${t.slice(0, 200)}`),
        () => '',
      );
      throw new VenueOutcomeUnknownError(
        `webhook answered ${res.status}${detail}; the ${what} may have been executed (a 5xx or 408 does not say it was not)`,
        false,
      );
    }
    let text: string;
    try {
      text = await res.text();
    } catch (e) {
      const why = `webhook answered ${res.status} but its body could not be read: ${describe(e)}`;
      if (res.ok) throw new VenueOutcomeUnknownError(why); // a 2xx: answered, unusably
      if (res.status === 429) throw new VenueUnavailableError(why);
      throw new VenueRejectedError(`webhook refused the ${what} (${res.status}); ${why}`);
    }
    // too many requests: turned away before processing (the endpoint's contract), retried with backoff
    if (res.status === 429) throw new VenueUnavailableError(`webhook answered 429: ${text.slice(0, 200)}`);
    if (!res.ok)
      throw new VenueRejectedError(`webhook refused the ${what} (${res.status}): ${text.slice(0, 200)}`);
    return text;
  }

  executionBody(req: ExecutionRequest): string {
    return JSON.stringify({
      idempotencyKey: req.idempotencyKey,
      kind: req.kind,
      account: req.account,
      orders: req.orders.map((o) => ({ symbol: o.symbol, side: o.side, qty: o.qty, reduceOnly: true })),
      decidedAt: req.decidedAt,
    });
  }

  /** `body`: the bytes kept from the first attempt under this key (they must encode `req`) */
  async execute(req: ExecutionRequest, body = this.executionBody(req)): Promise<ExecutionResult> {
    const text = await this.post(req.idempotencyKey, body, 'reduction');
    let parsed: z.infer<typeof AnswerSchema>;
    try {
      parsed = AnswerSchema.parse(JSON.parse(text));
    } catch (e) {
      // 2xx: the venue took the request and may have executed it, so this is no refusal
      throw new VenueOutcomeUnknownError(
        `webhook answered 2xx but not {fills: [...]}: ${(e as Error).message.slice(0, 200)}`,
      );
    }
    const result: ExecutionResult = {
      venue: this.name,
      // ms: a fill without its own time happened at the request's event time (the decision's, or the
      // latest market event since), in the log's clock; the wall clock may run ahead of the market events
      fills: parsed.fills.map((f) => ({ ...f, ts: f.ts ?? req.decidedAt })),
    };
    if (parsed.reference) result.reference = parsed.reference;
    return result;
  }
}

/** An error and its cause, for the failure audit: `fetch failed (UND_ERR_SOCKET: other side closed)`. */
function describe(e: unknown): string {
  const err = e as { message?: unknown; cause?: { code?: unknown; message?: unknown } } | null;
  const cause = err?.cause;
  const detail = cause
    ? ` (${typeof cause.code === 'string' ? `${cause.code}: ` : ''}${String(cause.message ?? cause)})`
    : '';
  return `${String(err?.message ?? e)}${detail}`;
}
