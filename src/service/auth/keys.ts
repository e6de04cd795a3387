/**
 * API keys: minting, the hashed keys file, and verification. A key is `pk_<id>_<secret>`; the file
 * (`PREEMPT_KEYS_FILE`, JSON lines) stores only its id, the SHA-256 of the whole key, and its scopes, so a
 * leaked file grants nothing. Keys are 256-bit random, for which a fast hash is the standard choice
 * (brute force is infeasible); comparison is constant time, and an unknown id costs the same as a wrong
 * secret.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { appendFileSync, existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { z } from 'zod';

export const SCOPES = ['score:read', 'events:write', 'admin'] as const;
export type Scope = (typeof SCOPES)[number];

export const KeyRecordSchema = z.object({
  id: z.string().regex(/^[a-f0-9]{16}$/),
  /** hex SHA-256 of the full key */
  hash: z.string().regex(/^[a-f0-9]{64}$/),
  scopes: z.array(z.enum(SCOPES)).min(1),
  /** ISO time */
  createdAt: z.string(),
  name: z.string().optional(),
});
export type KeyRecord = z.infer<typeof KeyRecordSchema>;

export interface Principal {
  keyId: string;
  scopes: ReadonlySet<Scope>;
  name?: string;
}

export class KeysFileError extends Error {
  readonly code = 'INVALID_KEYS_FILE';
}

export class InvalidScopeError extends Error {
  readonly code = 'INVALID_SCOPE';
}

const KEY_RE = /^pk_([a-f0-9]{16})_([A-Za-z0-9_-]{43})$/;

export function hashKey(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}

export function parseScopes(list: string): Scope[] {
  const scopes = list
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (scopes.length === 0) throw new InvalidScopeError(`no scopes given; choose from ${SCOPES.join(', ')}`);
  for (const s of scopes)
    if (!(SCOPES as readonly string[]).includes(s))
      throw new InvalidScopeError(`unknown scope "${s}"; choose from ${SCOPES.join(', ')}`);
  return [...new Set(scopes)] as Scope[];
}

/** Mint a key. The plain key is returned once; only `record` may be stored. */
export function mintKey(scopes: readonly Scope[], name?: string): { key: string; record: KeyRecord } {
  const id = randomBytes(8).toString('hex');
  const key = `pk_${id}_${randomBytes(32).toString('base64url')}`;
  const record: KeyRecord = {
    id,
    hash: hashKey(key),
    scopes: [...scopes],
    createdAt: new Date().toISOString(),
  };
  if (name) record.name = name;
  return { key, record };
}

/** Append a record to a keys file (created with mode 0600 if absent). */
export function appendKeyRecord(file: string, record: KeyRecord): void {
  mkdirSync(dirname(file), { recursive: true });
  appendFileSync(file, `${JSON.stringify(record)}\n`, { mode: 0o600 });
}

export function readKeysFile(file: string): KeyRecord[] {
  if (!existsSync(file)) throw new KeysFileError(`keys file ${file} does not exist`);
  const records: KeyRecord[] = [];
  readFileSync(file, 'utf8')
    .split('\n')
    .forEach((line, i) => {
      if (!line.trim()) return;
      let raw: unknown;
      try {
        raw = JSON.parse(line);
      } catch {
        throw new KeysFileError(`${file} line ${i + 1}: not JSON`);
      }
      const parsed = KeyRecordSchema.safeParse(raw);
      if (!parsed.success)
        throw new KeysFileError(`${file} line ${i + 1}: ${parsed.error.issues[0]?.path.join('.')} invalid`);
      records.push(parsed.data);
    });
  return records;
}

/** Verifies presented keys against a set of records; `fromFile` re-reads the file when it changes. */
export class KeyStore {
  private byId = new Map<string, KeyRecord>();
  private readonly dummy = Buffer.alloc(32);
  private mtimeMs = -1; // ms
  private checkedAt = 0; // ms

  private constructor(
    private readonly file: string | undefined,
    records: KeyRecord[],
  ) {
    this.load(records);
  }

  static fromRecords(records: KeyRecord[]): KeyStore {
    return new KeyStore(undefined, records);
  }

  static fromFile(file: string): KeyStore {
    const store = new KeyStore(file, readKeysFile(file));
    store.mtimeMs = statSync(file).mtimeMs;
    return store;
  }

  get size(): number {
    return this.byId.size;
  }

  private load(records: KeyRecord[]): void {
    this.byId = new Map(records.map((r) => [r.id, r]));
  }

  /** Pick up keys added by `preempt keys create` while running (checked at most once a second). */
  private refresh(now: number): void {
    if (!this.file || now - this.checkedAt < 1000) return;
    this.checkedAt = now;
    try {
      const m = statSync(this.file).mtimeMs;
      if (m !== this.mtimeMs) {
        this.load(readKeysFile(this.file));
        this.mtimeMs = m;
      }
    } catch {
      // keep the last good set: a half-written or briefly missing file must not lock everyone out
    }
  }

  /** The principal for a presented key, or undefined. Runs in constant time in the key's content. */
  verify(presented: string, now = Date.now()): Principal | undefined {
    this.refresh(now);
    const m = KEY_RE.exec(presented);
    const record = m?.[1] ? this.byId.get(m[1]) : undefined;
    const expected = record ? Buffer.from(record.hash, 'hex') : this.dummy;
    const actual = createHash('sha256').update(presented, 'utf8').digest();
    const equal = timingSafeEqual(expected, actual);
    if (!record || !equal) return undefined;
    const principal: Principal = { keyId: record.id, scopes: new Set(record.scopes) };
    if (record.name) principal.name = record.name;
    return principal;
  }
}
