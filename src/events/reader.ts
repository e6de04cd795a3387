/**
 * Streaming reader for canonical `.jsonl` / `.jsonl.gz` histories. It reads line by line (gzip detected by
 * its magic bytes), never holds the file in memory, validates every line through the EventGate, and on an
 * invalid line either throws `InvalidEventError` (`line N: field F: reason`) or, with `skipInvalid`,
 * counts it and moves on.
 *
 * Lines end at `\n` only (a `\r` before it is dropped, so CRLF files read too; a `\r` elsewhere is JSON
 * whitespace, not a line end), and each line must be valid UTF-8: a byte sequence that is not is reported,
 * never replaced by U+FFFD (which could merge two account names). A UTF-8 byte-order mark opening the file
 * is ignored. The file must be ordered by `ts` (spec): an event earlier than one before it (beyond
 * `toleranceMs`) is invalid in field `ts`.
 */
import { isUtf8 } from 'node:buffer';
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { type CanonicalEvent, EVENT_TYPES, type EventType } from './schema.js';
import { EventGate, type EventIssue, InvalidEventError, parseEvent } from './validate.js';

export interface ReadOptions {
  /** skip and count invalid lines instead of stopping at the first */
  skipInvalid?: boolean;
  /** called for each skipped line (only with skipInvalid) */
  onInvalid?: (line: number, issue: EventIssue) => void;
  /**
   * how far (ms) an event may be earlier than the latest before it and still be read (for a consumer that
   * reorders, like the feature pipeline's tolerance); default 0: the file must be ordered, ties in file order
   */
  toleranceMs?: number;
}

export interface ReadStats {
  lines: number;
  valid: number;
  byType: Record<EventType, number>;
  duplicates: number;
  skipped: number;
  blank: number;
  /** events read although earlier than an event before them (only within `toleranceMs`) */
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
  // first, so that a missing or unreadable file rejects here rather than as an 'error' event of a stream
  // nobody listens to yet (which took the process down)
  const gzipped = await isGzip(path);
  const raw = createReadStream(path, { highWaterMark: 1 << 20 });
  if (!gzipped) return raw;
  const gunzip = raw.pipe(createGunzip());
  // the file closes with its decompressor (a reader that stops early destroys only the latter), and a read
  // error of the file reaches the reader through it (pipe does not forward errors)
  gunzip.once('close', () => raw.destroy());
  raw.once('error', (e) => gunzip.destroy(e));
  return gunzip;
}

/** zlib's errors carry a code like Z_BUF_ERROR (truncated) or Z_DATA_ERROR (corrupt) */
function isZlibError(e: unknown): e is Error & { code: string } {
  if (!(e instanceof Error)) return false;
  const code = (e as Error & { code?: unknown }).code;
  return typeof code === 'string' && code.startsWith('Z_');
}

/**
 * The lines of a byte stream, split at `\n` only, each without its `\n` and without one `\r` before it.
 * A last line without a `\n` is yielded too.
 */
export async function* byteLines(input: Readable): AsyncGenerator<Buffer> {
  let carry: Buffer | null = null;
  for await (const chunk of input as AsyncIterable<Buffer | string>) {
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
    const buf: Buffer = carry ? Buffer.concat([carry, bytes]) : bytes;
    let start = 0;
    for (let nl = buf.indexOf(0x0a, start); nl !== -1; nl = buf.indexOf(0x0a, start)) {
      yield withoutCr(buf.subarray(start, nl));
      start = nl + 1;
    }
    // copied: the stream may reuse its chunk's memory
    carry = start < buf.length ? Buffer.from(buf.subarray(start)) : null;
  }
  if (carry) yield withoutCr(carry);
}

function withoutCr(line: Buffer): Buffer {
  return line.length > 0 && line[line.length - 1] === 0x0d ? line.subarray(0, line.length - 1) : line;
}

const BOM = Buffer.from([0xef, 0xbb, 0xbf]);

type LineResult = ReturnType<EventGate['check']>;

/** One line's verdict, recording nothing in the gate unless the event is valid (and then only its id/symbol). */
function checkLine(bytes: Buffer, gate: EventGate, minTs: number): LineResult {
  if (!isUtf8(bytes)) return { kind: 'invalid', field: '(line)', reason: 'not valid UTF-8' };
  let raw: unknown;
  try {
    raw = JSON.parse(bytes.toString('utf8'));
  } catch (e) {
    return { kind: 'invalid', field: '(line)', reason: `invalid JSON: ${(e as Error).message}` };
  }
  const parsed = parseEvent(raw);
  if (!parsed.ok) return { kind: 'invalid', field: parsed.field, reason: parsed.reason };
  const event = parsed.event;
  // a resent event is a duplicate whatever its ts; a new one must not go back in time
  if (event.id !== undefined && gate.hasSeen(event.id)) return { kind: 'duplicate', event };
  if (event.ts < minTs)
    return {
      kind: 'invalid',
      field: 'ts',
      reason: `${event.ts} is earlier than ${minTs}: a history file is ordered by ts`,
    };
  return gate.checkParsed(event);
}

/** Iterate the valid, non-duplicate events of a stream of JSON lines; `stats` is updated as it goes. */
export async function* readEventLines(
  input: Readable,
  stats: ReadStats = emptyStats(),
  options: ReadOptions = {},
  gate: EventGate = new EventGate(),
): AsyncGenerator<LocatedEvent> {
  const tolerance = options.toleranceMs ?? 0;
  let lineNo = 0;
  let maxTs = Number.NEGATIVE_INFINITY;
  try {
    for await (let bytes of byteLines(input)) {
      lineNo++;
      stats.lines++;
      if (lineNo === 1 && bytes.subarray(0, 3).equals(BOM)) bytes = bytes.subarray(3);
      if (isBlank(bytes)) {
        stats.blank++;
        continue;
      }
      const result = checkLine(bytes, gate, maxTs - tolerance);
      if (result.kind === 'invalid') {
        const issue = { field: result.field, reason: result.reason };
        stats.firstInvalid ??= { line: lineNo, ...issue };
        if (!options.skipInvalid) throw new InvalidEventError(lineNo, issue.field, issue.reason);
        stats.skipped++;
        options.onInvalid?.(lineNo, issue);
        continue;
      }
      if (result.kind === 'duplicate') {
        stats.duplicates++;
        continue;
      }
      const event = result.event;
      if (event.ts < maxTs) stats.outOfOrder++;
      else maxTs = event.ts;
      stats.valid++;
      stats.byType[event.type]++;
      yield { line: lineNo, event };
    }
  } catch (e) {
    // a truncated or corrupt .gz names the line it broke off in, like any other bad input
    if (isZlibError(e))
      throw new InvalidEventError(lineNo + 1, '(file)', `gzip stream broken off or corrupt: ${e.message}`);
    throw e;
  } finally {
    input.destroy();
  }
}

/** JSON whitespace only (space, tab, CR, LF) */
function isBlank(bytes: Buffer): boolean {
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i];
    if (b !== 0x20 && b !== 0x09 && b !== 0x0d && b !== 0x0a) return false; // an event line stops at its `{`
  }
  return true;
}

/** Read a history file (plain or gzip). */
export async function* readEventsFile(
  path: string,
  stats: ReadStats = emptyStats(),
  options: ReadOptions = {},
  gate?: EventGate,
): AsyncGenerator<LocatedEvent> {
  try {
    yield* readEventLines(await openTextStream(path), stats, options, gate);
  } catch (e) {
    // with several histories in one command, say which one the line is in
    if (e instanceof InvalidEventError && e.file === undefined) throw e.inFile(path);
    throw e;
  }
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
