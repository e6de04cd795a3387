/**
 * The service's one configuration: a zod schema over the environment, parsed once at boot. Every option
 * has a documented default; a bad value stops the process with a message naming the variable and the
 * reason, never later in the middle of a request.
 */
import { z } from 'zod';
import { type PolicyConfig, resolvePolicyConfig } from '../margin/index.js';
import { redactUrl } from '../redis/ensure-redis.js';

const int = (min: number, max: number) => z.coerce.number().int('must be an integer').min(min).max(max);
const num = (min: number, max: number) => z.coerce.number().min(min).max(max);
const fraction = num(0, 1);
const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'])
  .transform((v) => v === 'true' || v === '1' || v === 'yes');

export const ConfigSchema = z
  .object({
    /** HTTP port; 0 = any free port */
    PORT: int(0, 65535).default(8080),
    HOST: z.string().min(1).default('0.0.0.0'),
    /** `preempt worker` serves /metrics, /healthz and /readyz on this port when set (0 = any free port) */
    PREEMPT_METRICS_PORT: int(0, 65535).optional(),
    /** where the shared state lives; `preempt start` finds or starts one when unset */
    REDIS_URL: z.url({ protocol: /^rediss?$/, message: 'must be a redis:// or rediss:// URL' }).optional(),
    /** namespace of every Redis key and BullMQ queue (several deployments can share one Redis) */
    PREEMPT_PREFIX: z
      .string()
      .regex(/^[A-Za-z0-9_.-]+(:[A-Za-z0-9_.-]+)*$/, 'letters, digits, _ . - and : separators only')
      .default('preempt'),
    PREEMPT_MODEL_DIR: z.string().min(1).default('models/default'),
    /** JSON-lines file of hashed API keys; unset = `preempt start` makes a one-run admin key */
    PREEMPT_KEYS_FILE: z.string().min(1).optional(),
    PREEMPT_LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    /** bytes; larger request bodies get 413 */
    PREEMPT_BODY_LIMIT_BYTES: int(1024, 512 * 1024 * 1024).default(16 * 1024 * 1024),
    /** requests per key per window (shared by every API process through Redis); 0 = unlimited */
    PREEMPT_RATE_LIMIT: int(0, 10_000_000).default(1200),
    /** ms */
    PREEMPT_RATE_WINDOW_MS: int(100, 3_600_000).default(60_000),
    /**
     * ms an event's ts may be ahead of this process's clock: a later one is refused at ingest (400, field ts),
     * since one event from the future (a clock error, microseconds for ms) would make every later market event
     * "late" in the evaluator, and the log replays it after every restart
     */
    PREEMPT_MAX_FUTURE_MS: int(0, 86_400_000).default(10_000),
    /**
     * ms an event id is remembered for de-duplication at ingest (one Redis key per id for this long, about
     * 150 bytes each: ids per day x days)
     */
    PREEMPT_DEDUP_TTL_MS: int(1000, 365 * 86_400_000).default(7 * 86_400_000),
    /**
     * ms of event time an evaluator shard remembers the ids of its accounts' events (in memory, and in its
     * snapshot): an account event with an id stamped further back than the ids it has forgotten (between
     * this and 1.5x behind its newest event) is refused as `expired`, since it cannot be told from a resend.
     * Market events' ids cost nothing here (see EventGateOptions.marketIdsAtFrontier).
     */
    PREEMPT_SHARD_ID_WINDOW_MS: int(60_000, 365 * 86_400_000).default(86_400_000),
    /** evaluator shards (accounts split by hash); every worker process takes free shards */
    PREEMPT_SHARDS: int(1, 1024).default(1),
    /** most shards one worker process evaluates (0 = as many as are free) */
    PREEMPT_WORKER_MAX_SHARDS: int(0, 1024).default(0),
    /** events read from the stream per evaluation step */
    PREEMPT_EVAL_BATCH: int(1, 100_000).default(2000),
    /** ms an evaluator shard lease lasts without renewal (failover time) */
    PREEMPT_SHARD_LEASE_MS: int(1000, 600_000).default(10_000),
    /**
     * entries: a shard writes a snapshot of its state every this many log entries (at a committed position,
     * under its lease); a restart restores it and replays only the entries after it. 0 (the default) =
     * never, opt in: a restart replays the whole log and ignores any snapshot in Redis (unless the log was
     * trimmed), and the log is never trimmed (a snapshot holds at most 2,047 candles of each
     * instrument's 1 m, 5 m and 1 h series, 32 bytes each: about 200 KB per instrument however long it lives)
     */
    PREEMPT_SNAPSHOT_EVERY_ENTRIES: int(0, 100_000_000).default(0),
    /**
     * bytes (gzip): a snapshot above this is not written (logged, counted in
     * preempt_snapshot_write_failures_total{reason="too-large"}, retried after a backoff); below Redis's
     * proto-max-bulk-len (512 MB), above which the write would fail and break the shared connection
     */
    PREEMPT_SNAPSHOT_MAX_BYTES: int(1024, 500_000_000).default(256 * 1024 * 1024),
    /**
     * ms of log history always kept: the log is trimmed below the oldest shard snapshot, but never below
     * entries younger than this (audit and debugging)
     */
    PREEMPT_LOG_RETENTION_MS: int(0, 3650 * 86_400_000).default(86_400_000),
    /**
     * ms between a worker process's attempts to trim the log (any worker may). 0 (the default) = this one
     * never trims: opt in. After a trim a restart needs a usable snapshot, and a change of shard count, of
     * feature parameters or of the snapshot format makes every snapshot unusable (the shards then fail,
     * visibly, until the log is whole again); a policy change is applied from the restored state on.
     */
    PREEMPT_LOG_TRIM_INTERVAL_MS: int(0, 86_400_000).default(0),
    PREEMPT_WORKER_CONCURRENCY: int(1, 1000).default(8),
    PREEMPT_JOB_ATTEMPTS: int(1, 100).default(6),
    /** ms, first retry delay; doubles on each retry */
    PREEMPT_JOB_BACKOFF_MS: int(1, 3_600_000).default(1000),
    PREEMPT_VENUE: z.enum(['simulated', 'webhook']).default('simulated'),
    PREEMPT_WEBHOOK_URL: z.url().optional(),
    PREEMPT_WEBHOOK_SECRET: z.string().min(16, 'must be at least 16 characters').optional(),
    /** ms */
    PREEMPT_WEBHOOK_TIMEOUT_MS: int(100, 120_000).default(5000),
    /** pd at or above which an account is listed in the at-risk set */
    PREEMPT_AT_RISK_MIN_PD: fraction.default(0.01),
    /** policy thresholds, overriding the margin core's defaults (JSON object, keys of its PolicyConfig) */
    PREEMPT_POLICY: z
      .string()
      .optional()
      .transform((s, ctx) => {
        if (!s) return {} as Record<string, unknown>;
        let v: unknown;
        try {
          v = JSON.parse(s);
        } catch {}
        if (typeof v !== 'object' || v === null || Array.isArray(v)) {
          ctx.addIssue({ code: 'custom', message: 'must be a JSON object of policy thresholds' });
          return z.NEVER;
        }
        // checked here, with the rest of the config, before anything connects or loads (a bad policy used to
        // throw after Redis and the model were up, and the process stayed alive holding them)
        try {
          resolvePolicyConfig(v as Partial<PolicyConfig>);
        } catch (e) {
          ctx.addIssue({ code: 'custom', message: (e as Error).message });
          return z.NEVER;
        }
        // the service publishes reduce-only restrictions to the venue but not yet leverage caps: a cap set
        // here would appear in decisions while the venue never enforced it
        const p = v as Partial<PolicyConfig>;
        if (Number(p.leverageCapAfterReduce ?? 0) > 0 || p.leverageCapFollowsReduce === true) {
          ctx.addIssue({
            code: 'custom',
            message:
              'leverage caps (leverageCapAfterReduce, leverageCapFollowsReduce) are not delivered to the venue by the service yet (backtests only): leave them off',
          });
          return z.NEVER;
        }
        return v as Record<string, unknown>;
      }),
    /** run the model (false = rules only, as when no model loads) */
    PREEMPT_USE_MODEL: bool.default(true),
    /**
     * refuse a model whose metadata.json records no sha256 digests of its network files (older or hand-built
     * models), as a failed load: rules only, or the previous model kept on a reload
     */
    PREEMPT_REQUIRE_MODEL_DIGESTS: bool.default(false),
  })
  .superRefine((c, ctx) => {
    if (c.PREEMPT_VENUE === 'webhook') {
      if (!c.PREEMPT_WEBHOOK_URL)
        ctx.addIssue({
          code: 'custom',
          path: ['PREEMPT_WEBHOOK_URL'],
          message: 'required when PREEMPT_VENUE=webhook',
        });
      if (!c.PREEMPT_WEBHOOK_SECRET)
        ctx.addIssue({
          code: 'custom',
          path: ['PREEMPT_WEBHOOK_SECRET'],
          message: 'required when PREEMPT_VENUE=webhook',
        });
    }
  });

export type ServiceConfig = z.output<typeof ConfigSchema>;

export class ConfigError extends Error {
  readonly code = 'INVALID_CONFIG';
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/** Parse the environment (only the variables the schema names are read). Throws ConfigError listing every problem. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): ServiceConfig {
  const raw: Record<string, string> = {};
  for (const key of Object.keys(ConfigSchema.shape)) {
    const v = env[key];
    if (v !== undefined && v !== '') raw[key] = v;
  }
  const parsed = ConfigSchema.safeParse(raw);
  if (parsed.success) return parsed.data;
  throw new ConfigError(
    parsed.error.issues.map((i) => {
      const name = i.path.length > 0 ? String(i.path[0]) : '(config)';
      const got = raw[name];
      const shown =
        name.includes('SECRET') || got === undefined
          ? undefined
          : name.endsWith('_URL')
            ? redactUrl(got)
            : got;
      const value = shown === undefined ? '' : ` (got "${shown}")`;
      return `${name}: ${i.message}${value}`;
    }),
  );
}

/** A config with every default, for tests and embedding: `configFor({ PREEMPT_PREFIX: 'x' })`. */
export function configFor(overrides: Record<string, string | number | boolean> = {}): ServiceConfig {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(overrides)) env[k] = String(v);
  return loadConfig(env);
}
