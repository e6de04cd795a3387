/**
 * `POST /v1/events`: decode a JSON array or NDJSON body, validate every event with the canonical schema,
 * and append the batch to the event log before answering. By default the first invalid event rejects the
 * whole batch (400 with its index and field, nothing written); with `?partial=true` the valid events are
 * written and the invalid ones listed. Duplicates (an `id` seen before) are counted, never re-applied.
 * The body must be UTF-8 (bytes that are not are refused, never replaced), and no event may be stamped
 * more than `maxFutureMs` ahead of this process's clock. In NDJSON, errors name the body's 1-based `line`
 * beside the event's `index`.
 */
import { isUtf8 } from 'node:buffer';
import type { Redis } from 'ioredis';
import type { CanonicalEvent } from '../../events/schema.js';
import { parseEvent } from '../../events/validate.js';
import { ServiceError } from '../errors.js';
import type { ServiceMetrics } from '../metrics.js';
import { appendEvents } from '../state/event-log.js';
import type { Keyspace } from '../state/keys.js';
import { defineRoute } from './route.js';
import { IngestBodyDoc, IngestQuerySchema, IngestResponseSchema } from './schemas.js';

/** events per request; larger batches should be split (one batch is written atomically) */
export const MAX_BATCH_EVENTS = 100_000;

export interface Rejected {
  /** 0-based position of the event in the batch */
  index: number;
  /** NDJSON only: 1-based line of the body (blank lines count) */
  line?: number;
  field: string;
  reason: string;
}

/**
 * Split a body into raw values: a JSON array, or one JSON value per non-empty line (`lines[i]`: the body
 * line of value i, for NDJSON).
 */
export function decodeBatch(text: string): { values: unknown[]; lines?: number[]; error?: Rejected } {
  const trimmed = text.trimStart();
  if (trimmed.startsWith('[')) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(trimmed);
    } catch (e) {
      return {
        values: [],
        error: { index: 0, field: '(body)', reason: `not valid JSON: ${(e as Error).message}` },
      };
    }
    return { values: parsed as unknown[] };
  }
  const values: unknown[] = [];
  const lines: number[] = [];
  text.split('\n').forEach((line, i) => {
    if (!line.trim()) return;
    lines.push(i + 1);
    try {
      values.push(JSON.parse(line));
    } catch {
      values.push(Symbol.for('preempt.unparseable'));
    }
  });
  return { values, lines };
}

/** `index 3 (line 5)` for NDJSON, `index 3` for an array */
function where(r: Rejected): string {
  return r.line === undefined ? `index ${r.index}` : `index ${r.index} (line ${r.line})`;
}

interface Deps {
  redis: Redis;
  keys: Keyspace;
  dedupTtlMs: number;
  /** ms an event's ts may be ahead of the wall clock (see PREEMPT_MAX_FUTURE_MS) */
  maxFutureMs: number;
  metrics: ServiceMetrics;
  /** the wall clock, epoch ms (tests) */
  now?: () => number;
}

export function eventsRoute(deps: Deps) {
  return defineRoute(
    {
      method: 'post',
      path: '/v1/events',
      tag: 'ingest',
      summary: 'Ingest canonical events (JSON array or NDJSON)',
      description:
        'Events are durable (appended to the Redis event log) before the response and applied exactly once. ' +
        'Without `partial`, the first invalid event rejects the batch (nothing written) with its `index` and `field`.',
      scope: 'events:write',
      query: IngestQuerySchema,
      body: IngestBodyDoc,
      rawBody: { contentTypes: ['application/json', 'application/x-ndjson'] },
      responses: { 200: { description: 'batch written', schema: IngestResponseSchema } },
    },
    async (c, { query }) => {
      const bytes = Buffer.from(await c.req.arrayBuffer());
      if (!isUtf8(bytes))
        throw new ServiceError('INVALID_EVENT', 'index 0: field (body): not valid UTF-8', {
          index: 0,
          field: '(body)',
          reason: 'not valid UTF-8',
        });
      const { values, lines, error } = decodeBatch(bytes.toString('utf8'));
      if (error) throw new ServiceError('INVALID_EVENT', `index 0: ${error.reason}`, { ...error });
      if (values.length > MAX_BATCH_EVENTS)
        throw new ServiceError('PAYLOAD_TOO_LARGE', `at most ${MAX_BATCH_EVENTS} events per request`);
      const latestTs = (deps.now ?? Date.now)() + deps.maxFutureMs;
      const events: CanonicalEvent[] = [];
      const positions: number[] = [];
      const rejected: Rejected[] = [];
      const at = (index: number) => (lines ? { index, line: lines[index] as number } : { index });
      values.forEach((raw, index) => {
        const parsed =
          raw === Symbol.for('preempt.unparseable')
            ? ({ ok: false, field: '(line)', reason: 'not valid JSON' } as const)
            : parseEvent(raw);
        if (!parsed.ok) rejected.push({ ...at(index), field: parsed.field, reason: parsed.reason });
        else if (parsed.event.ts > latestTs)
          rejected.push({
            ...at(index),
            field: 'ts',
            reason: `${parsed.event.ts} is more than ${deps.maxFutureMs} ms ahead of the clock (${latestTs - deps.maxFutureMs}); epoch milliseconds expected`,
          });
        else {
          events.push(parsed.event);
          positions.push(index);
        }
      });
      const first = rejected[0];
      if (first && !query.partial)
        throw new ServiceError('INVALID_EVENT', `${where(first)}: field ${first.field}: ${first.reason}`, {
          ...first,
        });
      const result = await appendEvents(deps.redis, deps.keys, events, {
        dedupTtlMs: deps.dedupTtlMs,
        partial: query.partial,
      });
      if (!result.ok) {
        const reason = `undeclared instrument "${result.symbol}"`;
        const r: Rejected = { ...at(positions[result.index] ?? result.index), field: 'symbol', reason };
        throw new ServiceError('INVALID_EVENT', `${where(r)}: field symbol: ${reason}`, { ...r });
      }
      let accepted = 0;
      let duplicates = 0;
      let firstId: string | null = null;
      let lastId: string | null = null;
      result.statuses.forEach((s, i) => {
        if (s.kind === 'appended') {
          accepted++;
          firstId ??= s.streamId;
          lastId = s.streamId;
          const ev = events[i];
          if (ev) deps.metrics.eventsIngested.inc({ type: ev.type });
        } else if (s.kind === 'duplicate') duplicates++;
        else
          rejected.push({
            ...at(positions[i] ?? i),
            field: 'symbol',
            reason: `undeclared instrument "${(events[i] as { symbol?: string } | undefined)?.symbol ?? ''}"`,
          });
      });
      deps.metrics.eventsDuplicate.inc(duplicates);
      deps.metrics.eventsRejected.inc(rejected.length);
      rejected.sort((a, b) => a.index - b.index);
      return c.json({ accepted, duplicates, rejected, firstId, lastId });
    },
  );
}
