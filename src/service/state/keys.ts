/**
 * The Redis key layout of one deployment (everything under `PREEMPT_PREFIX`, so tests and several
 * deployments share a Redis safely). Keys that a script touches together share a hash tag (`{ev}`,
 * `{s<n>}`) so the layout also works on Redis Cluster.
 */
export interface Keyspace {
  prefix: string;
  /** the event log: every accepted event, in order */
  stream: string;
  /** symbols declared by an `instrument` event (the ingest gate's shared state) */
  instruments: string;
  /** de-duplication marker of one event id */
  eventId(id: string): string;
  /** hash account -> risk JSON, one per evaluator shard */
  risk(shard: number): string;
  /** sorted set account by pd, one per evaluator shard */
  atRisk(shard: number): string;
  /** hash account -> reduce-only restriction record (JSON), one per evaluator shard */
  restrictions(shard: number): string;
  /** hash account -> last restriction version applied at the venue (written by the workers) */
  restrictionsApplied(shard: number): string;
  /** which process evaluates a shard, with expiry */
  shardLease(shard: number): string;
  /** hash: progress of a shard (last applied entry, lag, last evaluation) */
  shardStatus(shard: number): string;
  /** hash: a shard's state snapshot (`entry`, `meta` JSON, `data` gzip), written under its lease */
  shardSnapshot(shard: number): string;
  /** the id below which the evaluators trimmed the event log ('0-0' or missing: never trimmed) */
  logTrimmed: string;
  /** consumer group of a shard on the event log */
  shardGroup(shard: number): string;
  /** hash symbol -> latest market JSON (mark, book), written by the evaluators, read by venues */
  market: string;
  /** the audit stream of every decision and action */
  audit: string;
  rateLimit(keyId: string, window: number): string;
  /** pub/sub channel telling every process to reload the model */
  modelReload: string;
  /** BullMQ `prefix` option */
  bull: string;
}

export function keyspace(prefix: string): Keyspace {
  return {
    prefix,
    stream: `${prefix}:{ev}:stream`,
    instruments: `${prefix}:{ev}:instruments`,
    eventId: (id) => `${prefix}:{ev}:id:${id}`,
    risk: (s) => `${prefix}:{s${s}}:risk`,
    atRisk: (s) => `${prefix}:{s${s}}:at-risk`,
    restrictions: (s) => `${prefix}:{s${s}}:restrict`,
    restrictionsApplied: (s) => `${prefix}:{s${s}}:restrict-applied`,
    shardLease: (s) => `${prefix}:{s${s}}:lease`,
    shardStatus: (s) => `${prefix}:{s${s}}:status`,
    shardSnapshot: (s) => `${prefix}:{s${s}}:snapshot`,
    logTrimmed: `${prefix}:{ev}:trimmed`,
    shardGroup: (s) => `evaluator-s${s}`,
    market: `${prefix}:market`,
    audit: `${prefix}:audit`,
    rateLimit: (keyId, w) => `${prefix}:rl:${keyId}:${w}`,
    modelReload: `${prefix}:model-reload`,
    bull: `${prefix}:{bull}`,
  };
}

/** The shard that owns an account: FNV-1a over its UTF-16 code units, modulo the shard count. */
export function shardOf(account: string, shards: number): number {
  if (shards <= 1) return 0;
  let h = 0x811c9dc5;
  for (let i = 0; i < account.length; i++) {
    h ^= account.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h % shards;
}
