/**
 * What the venue was sent and answered for an execution job, kept in Redis across the job's attempts (and
 * a later run of the failed job), in one hash per job (`<prefix>:exec:<jobId>`), so all of it expires
 * together, KEEP_MS (7 days) after the last attempt that read or wrote it.
 *
 * - The request (`request`): built once per generation and kept before it is first sent; every later
 *   attempt of that generation sends it as it is, byte for byte, under its idempotency key.
 * - Sends (`sends`, `sentAt`): counted before each send, so a request that may have reached the venue is
 *   known even if what followed could not be written. `notExecuted` counts the sends the venue definitely
 *   did not execute (nothing was sent, a 429, a refusal), written after the answer, each send at most once
 *   (`ne:<n>` marks send n, so a write the client resends after a reconnect is not counted twice).
 *   While some send is not counted there (`sends > notExecuted`), or the venue answered (`answeredAt`), the
 *   job may have reduced the position: it never gives its reservation back, is never skipped as stale, and
 *   its kept request is the only one it ever sends.
 * - The generation (`gen`): when the job fails for good with every send definitely not executed, its
 *   generation is retired (`retire`, atomically with that check: an attempt still running can no longer
 *   count a send of it, nor send it; its kept request, if any, is dropped), and then that generation's
 *   reservation given back: the next run builds a fresh request, sized to what it is granted then, under a
 *   new idempotency key `<jobId>#g<gen>`, reserving under that key (see `Reservations`). A retired generation
 *   never executed anything, so its reservation may go back whenever: a run of a later generation takes it
 *   over when it reserves, so a release that comes after it is a no-op. A key never carries a
 *   second body, and a run after a failure for good never reuses the failed key (a venue may keep its
 *   failure); retries within one run do reuse it, with the same body.
 * - The answer: with a usable answer, a retry records exactly that answer instead of asking the venue again,
 *   and once its fills are in the log, does not append them again.
 *
 * Restriction jobs keep their request here the same way (generation 0 only: they reserve nothing).
 *
 * Bounded size: a job decided again through a long venue outage runs again and again, each run counting
 * sends (and retiring a generation), and every use renews the record's expiry, so it must not grow with
 * them. `sends` and `notExecuted` are plain counts, exact however many sends there were: they alone decide
 * `mayHaveExecuted`, so a retry always knows whether anything sent may have executed. The per-send marks
 * only make a call that the client resends (after a reconnect lost its reply, seconds later) count once;
 * they are kept for the last MARKS_KEPT sends (`snd:<n>`, the calling attempt's token, and `ne:<n>`) and
 * retirements (`ret:<gen>`), older ones deleted as new ones are written. What falls out of that window errs
 * on the safe side: a not-executed mark for a send more than MARKS_KEPT sends back is refused (the send
 * stays possibly executed: the reservation is kept and the kept request resent under its key, never a
 * fresh one), a resent count of such a send is counted again (more sends: the same), and a resent
 * retirement of a generation that old answers 'moved' (nothing released). A run's sends are sequential
 * (one attempt after another, a stalled copy at most beside it), so a reply is never that late in practice.
 * Nothing is refused or marked for an operator past any number of sends: a liquidation must still go out
 * when the venue comes back. The record then holds its counts, the kept request and answer, and at most
 * 3 x MARKS_KEPT marks, however long it lives.
 */
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Keyspace } from '../state/keys.js';
import type { VenueFill } from '../venue/types.js';

/** ms a record is kept after its last use (as long as reservations and completed job ids) */
export const KEEP_MS = 7 * 86_400_000;

/** per-send (`snd:<n>`, `ne:<n>`) and per-retirement (`ret:<gen>`) marks kept: the latest this many */
export const MARKS_KEPT = 16;

/** The idempotency key of generation `gen` of a job's request: the job id, then `<jobId>#g<gen>`. */
export function idempotencyKeyFor(jobId: string, gen: number): string {
  return gen === 0 ? jobId : `${jobId}#g${gen}`;
}

/** The idempotency keys of the generations before `gen` (all retired: none of them executed anything). */
export function retiredKeysBefore(jobId: string, gen: number): string[] {
  return Array.from({ length: gen }, (_, g) => idempotencyKeyFor(jobId, g));
}

/** A usable venue answer and what the job asked for. */
export interface ExecutedAnswer {
  venue: string;
  reference?: string;
  /** as the venue reported them */
  fills: VenueFill[];
  /** the orders sent (contracts granted by the reservation) */
  granted: { symbol: string; side: 'buy' | 'sell'; qty: number }[];
  /** ms, event time the venue executed at */
  eventTime: number;
  /** base units per contract of each ordered symbol at execution (for the USD notional) */
  contractSize: Record<string, number>;
  /** the idempotency key it was sent under (absent in answers kept before generations: the job id) */
  idempotencyKey?: string;
}

/** A request as sent under a job's idempotency key. */
export interface SentRequest<R> {
  /** the venue request (orders, sizes, event time, market inputs) */
  request: R;
  /** the exact bytes the venue sent (a venue that sends a body), else null */
  body: string | null;
  /** ms, wall clock when it was kept */
  keptAt: number;
  /** the generation it was kept for (its idempotency key: `idempotencyKeyFor(jobId, gen)`) */
  gen: number;
}

export interface ExecutionRecord {
  /**
   * ms, wall clock of the venue's first 2xx answer, of the first request sent and not answered
   * (`unanswered`), or of a redirect (`redirected`); undefined while the venue did not answer so
   */
  answeredAt?: number;
  /** the venue's endpoint answered 3xx (not followed) and no 2xx since: the job needs an operator */
  redirected?: boolean;
  /** why the latest attempt's outcome is unknown (a 2xx that could not be used, no answer, a 3xx) */
  unknown?: string;
  /** the venue may have executed but never answered 2xx (requests sent, none answered) */
  unanswered?: boolean;
  answer?: ExecutedAnswer;
  /** the answer's fills are in the event log */
  recorded: boolean;
  /** the current generation of the job's request (0 until a kept request was retired) */
  gen: number;
  /** requests possibly sent (counted before each send), all generations */
  sends: number;
  /** of those, how many the venue definitely did not execute */
  notExecuted: number;
  /** the request kept for the current generation, if any */
  kept?: SentRequest<unknown>;
}

/** Whether the venue may have executed something sent for the job (so its reservation is never given back). */
export function mayHaveExecuted(rec: ExecutionRecord): boolean {
  return rec.answeredAt !== undefined || rec.sends > rec.notExecuted;
}

/** The job's generation moved on (its kept request was retired) since this attempt read it: nothing sent. */
export class GenerationMovedError extends Error {
  override name = 'GenerationMovedError';
  constructor(
    message: string,
    /** the job's generation now (greater than the attempt's when that one was retired) */
    readonly current: number,
  ) {
    super(message);
  }
}

// KEYS: record. ARGV: generation, request JSON, keep ms. {0, gen} if the generation moved on, else
// {1, set (1 if this call kept it), the kept request JSON}
const KEEP = `
local gen = tonumber(redis.call('HGET', KEYS[1], 'gen') or '0')
if gen ~= tonumber(ARGV[1]) then return {0, gen} end
local set = redis.call('HSETNX', KEYS[1], 'request', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {1, set, redis.call('HGET', KEYS[1], 'request')}`;

// KEYS: record. ARGV: generation, now (ms), keep ms, send token, marks kept. {1, n}: counted as possibly
// sent, send number n; {0, gen}: the generation moved on or its request is not kept (nothing may be sent).
// A token among the last `marks kept` sends (the same call resent by the client after a reconnect) returns
// its number without counting again. Send n's marks (`snd:<n>` = token, `ne:<n>`) are deleted once send
// n + `marks kept` is counted.
const SENDING = `
local sends = tonumber(redis.call('HGET', KEYS[1], 'sends') or '0')
local window = tonumber(ARGV[5])
for s = sends, math.max(1, sends - window + 1), -1 do
  if redis.call('HGET', KEYS[1], 'snd:' .. s) == ARGV[4] then return {1, s} end
end
local gen = tonumber(redis.call('HGET', KEYS[1], 'gen') or '0')
if gen ~= tonumber(ARGV[1]) or redis.call('HEXISTS', KEYS[1], 'request') == 0 then return {0, gen} end
local n = redis.call('HINCRBY', KEYS[1], 'sends', 1)
redis.call('HSET', KEYS[1], 'sentAt', ARGV[2], 'snd:' .. n, ARGV[4])
if n > window then redis.call('HDEL', KEYS[1], 'snd:' .. (n - window), 'ne:' .. (n - window)) end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {1, n}`;

// KEYS: record. ARGV: send number, reason, keep ms, marks kept. 1 if counted now, 0 if send n was counted
// before (a resent call), is not a send of this record, or is older than the last `marks kept` sends (its
// mark is gone: it cannot be told whether it was counted, so it is not, and the send stays possibly executed)
const NOT_EXECUTED = `
local n = tonumber(ARGV[1])
local sends = tonumber(redis.call('HGET', KEYS[1], 'sends') or '0')
if n < 1 or n > sends or n <= sends - tonumber(ARGV[4]) then return 0 end
if redis.call('HSETNX', KEYS[1], 'ne:' .. ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('HINCRBY', KEYS[1], 'notExecuted', 1)
redis.call('HSET', KEYS[1], 'notExecutedWhy', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1`;

// KEYS: record. ARGV: expected generation, now (ms), keep ms, marks kept.
// {'retired', gen after, 1 if that generation had kept a request} (also when it was retired before, among
// the last `marks kept` retirements: a resent call answers as the first did) | {'answered', gen} |
// {'sent', gen} | {'moved', gen} (also for a retirement older than those: nothing is released on it)
const RETIRE = `
local gen = tonumber(redis.call('HGET', KEYS[1], 'gen') or '0')
local want = tonumber(ARGV[1])
if gen ~= want then
  local done = redis.call('HGET', KEYS[1], 'ret:' .. want)
  if done then return {'retired', want + 1, tonumber(done)} end
  return {'moved', gen}
end
if redis.call('HEXISTS', KEYS[1], 'answeredAt') == 1 then return {'answered', gen} end
local sends = tonumber(redis.call('HGET', KEYS[1], 'sends') or '0')
local ne = tonumber(redis.call('HGET', KEYS[1], 'notExecuted') or '0')
if sends > ne then return {'sent', gen} end
local had = redis.call('HEXISTS', KEYS[1], 'request')
redis.call('HDEL', KEYS[1], 'request')
redis.call('HSET', KEYS[1], 'gen', gen + 1, 'retiredAt', ARGV[2], 'ret:' .. gen, had)
if gen >= tonumber(ARGV[4]) then redis.call('HDEL', KEYS[1], 'ret:' .. (gen - tonumber(ARGV[4]))) end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {'retired', gen + 1, had}`;

export type RetireResult =
  | {
      status: 'retired';
      /** the generation now (the retired one + 1) */
      gen: number;
      /** the retired generation's idempotency key (its reservation is the one to give back) */
      retiredKey: string;
      /** whether the retired generation had kept a request (one may have been built, never executed) */
      hadRequest: boolean;
    }
  | { status: 'moved' | 'answered' | 'sent'; gen: number };

export class ExecutionRecords {
  constructor(
    private readonly redis: Redis,
    private readonly keys: Keyspace,
  ) {}

  private key(jobId: string): string {
    return `${this.keys.prefix}:exec:${jobId}`;
  }

  /** The record and its kept request; reading renews the expiry of both (one key). */
  async get(jobId: string): Promise<ExecutionRecord> {
    const key = this.key(jobId);
    const res = await this.redis.multi().hgetall(key).pexpire(key, KEEP_MS).exec();
    check(res);
    const h = (res?.[0]?.[1] ?? {}) as Record<string, string>;
    const rec: ExecutionRecord = {
      recorded: h.recorded === '1',
      gen: Number(h.gen ?? 0),
      sends: Number(h.sends ?? 0),
      notExecuted: Number(h.notExecuted ?? 0),
    };
    if (h.answeredAt !== undefined) rec.answeredAt = Number(h.answeredAt);
    if (h.unknown !== undefined) rec.unknown = h.unknown;
    if (h.unanswered === '1') rec.unanswered = true;
    if (h.redirected === '1') rec.redirected = true;
    if (h.answer !== undefined) rec.answer = JSON.parse(h.answer) as ExecutedAnswer;
    if (h.request !== undefined) rec.kept = parseSent(jobId, h.request);
    return rec;
  }

  /**
   * Keep `request` (and the venue's `body` for it) as the job's request of generation `gen` unless one is
   * kept already, and return the one kept (`mine`: this call kept it; else an earlier or concurrent attempt
   * did). Throws, and the caller sends nothing, if Redis does not confirm it, or GenerationMovedError if
   * the job's generation is no longer `gen`.
   */
  async keep<R>(
    jobId: string,
    gen: number,
    request: R,
    body: string | null,
  ): Promise<{ kept: SentRequest<R>; mine: boolean }> {
    const value: SentRequest<R> = { request, body, keptAt: Date.now(), gen };
    const out = (await this.redis.eval(KEEP, 1, this.key(jobId), gen, JSON.stringify(value), KEEP_MS)) as [
      number,
      number,
      string?,
    ];
    if (out[0] !== 1)
      throw new GenerationMovedError(
        `the request of ${jobId} was retired (generation ${out[1]}): nothing sent`,
        Number(out[1]),
      );
    const kept = parseSent<R>(jobId, out[2]);
    if (!kept) throw new Error(`sent request of ${jobId}: not kept`);
    return { kept, mine: out[1] === 1 };
  }

  /**
   * Count a send of generation `gen`'s kept request before it is made (the venue may execute it from
   * then on), and return its number (for `notExecuted`). Throws GenerationMovedError, and nothing may be
   * sent, if that request was retired meanwhile. One call counts once, even if the client resends it.
   */
  async sending(jobId: string, gen: number): Promise<number> {
    const out = (await this.redis.eval(
      SENDING,
      1,
      this.key(jobId),
      gen,
      Date.now(),
      KEEP_MS,
      randomUUID(),
      MARKS_KEPT,
    )) as [number, number];
    if (Number(out[0]) !== 1)
      throw new GenerationMovedError(
        `the request of ${jobId} (generation ${gen}) was retired before it was sent: nothing sent`,
        Number(out[1]),
      );
    return Number(out[1]);
  }

  /**
   * Send `n` (as `sending` numbered it) was definitely not executed (nothing sent, a 429, a refusal).
   * Counted once per send: a resent call (the client resends a command whose reply a reconnect lost) or a
   * second call for the same send changes nothing. A send more than MARKS_KEPT sends back is not counted
   * (its mark is gone): it stays possibly executed, the safe side.
   */
  async notExecuted(jobId: string, n: number, reason: string): Promise<void> {
    await this.redis.eval(NOT_EXECUTED, 1, this.key(jobId), n, reason.slice(0, 500), KEEP_MS, MARKS_KEPT);
  }

  /**
   * Retire generation `gen` if nothing sent for the job may have executed: its kept request (if any) is
   * dropped and the next attempt builds a new request under the next generation's key. Only if the job is
   * still at `gen`; a call for a generation retired already (another attempt's, or this call resent by the
   * client), among the last MARKS_KEPT retirements, answers as its retirement did. Otherwise says why not
   * ('answered'/'sent': the venue may have executed; 'moved': the record is not at `gen` and has no
   * retirement of it it still remembers).
   */
  async retire(jobId: string, gen: number): Promise<RetireResult> {
    const out = (await this.redis.eval(
      RETIRE,
      1,
      this.key(jobId),
      String(gen),
      Date.now(),
      KEEP_MS,
      MARKS_KEPT,
    )) as [string, number, number?];
    const [status, next, had] = out;
    if (status === 'retired')
      return {
        status,
        gen: next,
        retiredKey: idempotencyKeyFor(jobId, next - 1),
        hadRequest: Number(had) === 1,
      };
    return { status: status as 'moved' | 'answered' | 'sent', gen: next };
  }

  /** The venue answered 2xx, but unusably: the outcome is unknown. */
  async answeredUnknown(jobId: string, reason: string): Promise<void> {
    await this.write(jobId, { unknown: reason }, true);
  }

  /**
   * The request may have reached the venue, but no answer came (a timeout, a connection reset after
   * sending): the outcome is unknown. Recorded as if answered (never skipped, never released), marked
   * `unanswered` until the venue answers 2xx.
   */
  async sentUnanswered(jobId: string, reason: string): Promise<void> {
    const key = this.key(jobId);
    const res = await this.redis
      .multi()
      .hsetnx(key, 'answeredAt', String(Date.now()))
      .hset(key, { unknown: reason })
      // a 2xx answered in an earlier attempt stays the record's kind
      .hsetnx(key, 'unanswered', '1')
      .pexpire(key, KEEP_MS)
      .exec();
    check(res);
  }

  /**
   * The venue's endpoint answered a redirect (3xx), not followed. It answered and may have acted on the
   * request before redirecting (a 303 is the usual answer to a processed POST), so the job is recorded as
   * answered: its reservation is kept, and it is never skipped as stale.
   */
  async redirected(jobId: string, reason: string): Promise<void> {
    await this.write(jobId, { unknown: reason, redirected: '1' });
  }

  /** The venue answered 2xx with fills (kept before they are appended to the log). */
  async answeredWith(jobId: string, answer: ExecutedAnswer): Promise<void> {
    await this.write(jobId, { answer: JSON.stringify(answer) }, true);
  }

  /** The answer's fills are in the event log. */
  async markRecorded(jobId: string): Promise<void> {
    await this.write(jobId, { recorded: '1' });
  }

  private async write(jobId: string, fields: Record<string, string>, answered2xx = false): Promise<void> {
    const key = this.key(jobId);
    const tx = this.redis.multi().hsetnx(key, 'answeredAt', String(Date.now())).hset(key, fields);
    // the venue answered 2xx: no longer only sent and unanswered, nor redirected
    if (answered2xx) tx.hset(key, { unanswered: '0', redirected: '0' });
    check(await tx.pexpire(key, KEEP_MS).exec());
  }
}

function parseSent<R>(jobId: string, raw: unknown): SentRequest<R> | undefined {
  if (raw === null || raw === undefined) return undefined;
  let v: Partial<SentRequest<R>> | null = null;
  try {
    v = JSON.parse(String(raw)) as Partial<SentRequest<R>>;
  } catch {
    v = null;
  }
  if (
    !v ||
    typeof v !== 'object' ||
    typeof v.request !== 'object' ||
    v.request === null ||
    !(v.body === null || typeof v.body === 'string') ||
    typeof v.keptAt !== 'number' ||
    !(typeof v.gen === 'number' && Number.isInteger(v.gen) && v.gen >= 0)
  )
    throw new Error(`sent request of ${jobId}: unreadable (${String(raw).slice(0, 100)})`);
  return { request: v.request, body: v.body, keptAt: v.keptAt, gen: v.gen };
}

function check(res: [Error | null, unknown][] | null): void {
  const failed = res?.find(([err]) => err);
  if (!res || failed) throw failed?.[0] ?? new Error('execution record: transaction aborted');
}
