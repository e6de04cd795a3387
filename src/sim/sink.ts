/**
 * Event sinks for the simulator: a JSON Lines file (gzip when the name ends in .gz) written in 64 KiB
 * chunks with backpressure (the simulation waits for the stream to drain once a minute, so memory stays
 * bounded whatever the run's length), and an in-memory collector for tests. JSON.stringify of the same
 * objects gives the same bytes and gzip has no timestamp in its header, so a seed gives a byte-identical file.
 */

import { once } from 'node:events';
import { createWriteStream, type WriteStream } from 'node:fs';
import { finished } from 'node:stream/promises';
import { createGzip, type Gzip } from 'node:zlib';
import type { CanonicalEvent } from '../events/schema.js';
import type { EventSink } from './venue/types.js';

const CHUNK = 1 << 16;

export class JsonlFileSink implements EventSink {
  private buffer = '';
  private readonly file: WriteStream;
  private readonly head: Gzip | WriteStream;
  private blocked = false;
  private error: Error | undefined;
  bytes = 0;

  constructor(readonly path: string) {
    this.file = createWriteStream(path);
    this.head = path.endsWith('.gz') ? createGzip({ level: 6 }) : this.file;
    if (this.head !== this.file) this.head.pipe(this.file);
    const fail = (e: Error) => {
      this.error ??= e;
    };
    this.file.on('error', fail);
    this.head.on('error', fail);
  }

  write(event: CanonicalEvent): void {
    this.buffer += `${JSON.stringify(event)}\n`;
    if (this.buffer.length >= CHUNK) this.push();
  }

  private push(): void {
    if (this.buffer.length === 0) return;
    this.bytes += Buffer.byteLength(this.buffer);
    if (!this.head.write(this.buffer)) this.blocked = true;
    this.buffer = '';
  }

  async flush(): Promise<void> {
    if (this.error) throw this.error;
    if (this.blocked) {
      this.blocked = false;
      await once(this.head, 'drain');
    }
  }

  async close(): Promise<void> {
    this.push();
    this.head.end();
    await finished(this.file);
    if (this.error) throw this.error;
  }
}

/** Keeps every event (small runs and tests only). */
export class MemorySink implements EventSink {
  readonly events: CanonicalEvent[] = [];
  write(event: CanonicalEvent): void {
    this.events.push(event);
  }
}
