/**
 * Streaming reader for canonical `.jsonl` / `.jsonl.gz` histories. It reads line by line (gzip detected by
 * its magic bytes), never holds the file in memory, validates every line through the EventGate, and on an
 * invalid line either throws `InvalidEventError` (`line N: field F: reason`) or, with `skipInvalid`,
 * counts it and moves on.
 */
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { type CanonicalEvent, EVENT_TYPES, type EventType } from './schema.js';
import { EventGate, type EventIssue, InvalidEventError } from './validate.js';

export interface ReadOptions {
  /** skip and count invalid lines instead of stopping at the first */
  skipInvalid?: boolean;
  /** called for each skipped line (only with skipInvalid) */
  onInvalid?: (line: number, issue: EventIssue) => void;
}

export interface ReadStats {
  lines: number;
  valid: number;
  byType: Record<EventType, number>;
  duplicates: number;
  skipped: number;
  blank: number;
  /** events whose ts is earlier than the previous event's (the spec asks files to be ordered) */
  outOfOrder: number;
  firstInvalid?: { line: number } & EventIssue;
}

export interface LocatedEvent {
  line: number;
  event: CanonicalEvent;
}

export function emptyStats(): ReadStats {
  const byType = Object.fromEntries(EVENT_TYPES.map((t) => [t, 0])) as Record<EventType, number>;
  return { lines: 0, valid: 0, byType, duplicates: 0, skipped: 0, blank: 0, outOfOrder: 0 };
}

async function isGzip(path: string): Promise<boolean> {
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.alloc(2);
    const { bytesRead } = await fh.read(buf, 0, 2, 0);
    return bytesRead === 2 && buf[0] === 0x1f && buf[1] === 0x8b;
  } finally {
    await fh.close();
  }
}

export async function openTextStream(path: string): Promise<Readable> {
  const raw = createReadStream(path, { highWaterMark: 1 << 20 });
  return (await isGzip(path)) ? raw.pipe(createGunzip()) : raw;
}

/** Iterate the valid, non-duplicate events of a stream of JSON lines; `stats` is updated as it goes. */
export async function* readEventLines(
  input: Readable,
  stats: ReadStats = emptyStats(),
  options: ReadOptions = {},
  gate: EventGate = new EventGate(),
): AsyncGenerator<LocatedEvent> {
  const lines = createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY });
  let lineNo = 0;
  let lastTs = Number.NEGATIVE_INFINITY;
  for await (const text of lines) {
    lineNo++;
    stats.lines++;
    if (text.trim() === '') {
      stats.blank++;
      continue;
    }
    let raw: unknown;
    let result: ReturnType<EventGate['check']>;
    try {
      raw = JSON.parse(text);
      result = gate.check(raw);
    } catch (e) {
      result = { kind: 'invalid', field: '(line)', reason: `invalid JSON: ${(e as Error).message}` };
    }
    if (result.kind === 'invalid') {
      const issue = { field: result.field, reason: result.reason };
      stats.firstInvalid ??= { line: lineNo, ...issue };
      if (!options.skipInvalid) {
        lines.close();
        input.destroy();
        throw new InvalidEventError(lineNo, issue.field, issue.reason);
      }
      stats.skipped++;
      options.onInvalid?.(lineNo, issue);
      continue;
    }
    if (result.kind === 'duplicate') {
      stats.duplicates++;
      continue;
    }
    const event = result.event;
    if (event.ts < lastTs) stats.outOfOrder++;
    else lastTs = event.ts;
    stats.valid++;
    stats.byType[event.type]++;
    yield { line: lineNo, event };
  }
}

/** Read a history file (plain or gzip). */
export async function* readEventsFile(
  path: string,
  stats: ReadStats = emptyStats(),
  options: ReadOptions = {},
  gate?: EventGate,
): AsyncGenerator<LocatedEvent> {
  yield* readEventLines(await openTextStream(path), stats, options, gate);
}

/** Read several files as one ordered history (one gate: ids and instruments carry across files). */
export async function* readEventsFiles(
  paths: readonly string[],
  stats: ReadStats = emptyStats(),
  options: ReadOptions = {},
): AsyncGenerator<LocatedEvent & { file: string }> {
  const gate = new EventGate();
  for (const file of paths) {
    for await (const located of readEventsFile(file, stats, options, gate)) yield { ...located, file };
  }
}
