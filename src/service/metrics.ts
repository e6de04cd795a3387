/**
 * Prometheus metrics of one service process (its own registry, so several instances can coexist in a
 * test): request latency, ingest counts, scores (and scoring failures), decisions, queue depths, job
 * durations, restrictions applied and lifted, evaluation lag, and the model in use.
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import { scoreWorkerRestarts } from '../model/score-pool-stats.js';

export interface ServiceMetrics {
  registry: Registry;
  httpDuration: Histogram<'method' | 'route' | 'status'>;
  eventsIngested: Counter<'type'>;
  eventsDuplicate: Counter;
  eventsRejected: Counter;
  eventsApplied: Counter<'shard'>;
  eventsRefused: Counter<'shard' | 'code'>;
  scoresComputed: Counter<'source'>;
  scoreFailures: Counter<'source' | 'stage'>;
  scoreWorkerRestarts: Counter;
  pd: Histogram;
  decisions: Counter<'decision'>;
  jobsEnqueued: Counter<'queue'>;
  jobDuration: Histogram<'queue' | 'outcome'>;
  jobsFailed: Counter<'queue' | 'final'>;
  jobsRetried: Counter<'queue'>;
  restrictions: Counter<'state' | 'outcome'>;
  queueDepth: Gauge<'queue' | 'state'>;
  evalLag: Gauge<'shard'>;
  evalBacklog: Gauge<'shard'>;
  evalDuration: Histogram<'shard'>;
  evalRulesOnly: Gauge<'shard'>;
  evalFailures: Counter<'shard' | 'stage'>;
  evalFailing: Gauge<'shard'>;
  modelInfo: Gauge<'version' | 'backend' | 'mode'>;
  snapshotBytes: Gauge<'shard'>;
  snapshotTimestamp: Gauge<'shard'>;
  snapshotEntriesBehind: Gauge<'shard'>;
  snapshotDuration: Histogram<'shard' | 'op'>;
  snapshotWriteFailures: Counter<'shard' | 'reason'>;
  snapshotConsecutiveFailures: Gauge<'shard'>;
  rebuilds: Counter<'shard' | 'source'>;
  logTrimmedEntries: Counter;
}

export function createMetrics(opts: { defaults?: boolean } = {}): ServiceMetrics {
  const registry = new Registry();
  if (opts.defaults) collectDefaultMetrics({ register: registry, prefix: 'preempt_process_' });
  const r = [registry];
  return {
    registry,
    httpDuration: new Histogram({
      name: 'preempt_http_request_duration_seconds',
      help: 'HTTP request latency by route and status',
      labelNames: ['method', 'route', 'status'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: r,
    }),
    eventsIngested: new Counter({
      name: 'preempt_events_ingested_total',
      help: 'events appended to the log',
      labelNames: ['type'],
      registers: r,
    }),
    eventsDuplicate: new Counter({
      name: 'preempt_events_duplicate_total',
      help: 'events ignored as duplicate ids',
      registers: r,
    }),
    eventsRejected: new Counter({
      name: 'preempt_events_rejected_total',
      help: 'invalid events refused at ingest',
      registers: r,
    }),
    eventsApplied: new Counter({
      name: 'preempt_events_applied_total',
      help: 'events applied by an evaluator shard',
      labelNames: ['shard'],
      registers: r,
    }),
    eventsRefused: new Counter({
      name: 'preempt_events_refused_total',
      help: 'logged events the margin core or features refused (state unchanged)',
      labelNames: ['shard', 'code'],
      registers: r,
    }),
    scoresComputed: new Counter({
      name: 'preempt_scores_total',
      help: 'pd rows scored',
      labelNames: ['source'],
      registers: r,
    }),
    scoreFailures: new Counter({
      name: 'preempt_score_failures_total',
      help: 'scoring calls that threw (stage score: those rows were decided rules-only; stage explain: the view lists no features)',
      labelNames: ['source', 'stage'],
      registers: r,
    }),
    scoreWorkerRestarts: (() => {
      // the pools count process-wide; this registry reports those since it was created
      let seen = scoreWorkerRestarts();
      return new Counter({
        name: 'preempt_score_worker_restarts_total',
        help: 'score pool worker threads started to replace one that exited or crashed (the scoring calls it held failed)',
        registers: r,
        collect() {
          const now = scoreWorkerRestarts();
          if (now > seen) this.inc(now - seen);
          seen = now;
        },
      });
    })(),
    pd: new Histogram({
      name: 'preempt_pd',
      help: 'distribution of evaluated default probabilities',
      buckets: [0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9],
      registers: r,
    }),
    decisions: new Counter({
      name: 'preempt_decisions_total',
      help: 'decisions by type',
      labelNames: ['decision'],
      registers: r,
    }),
    jobsEnqueued: new Counter({
      name: 'preempt_jobs_enqueued_total',
      help: 'jobs enqueued (new job ids)',
      labelNames: ['queue'],
      registers: r,
    }),
    jobDuration: new Histogram({
      name: 'preempt_job_duration_seconds',
      help: 'execution job durations',
      labelNames: ['queue', 'outcome'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: r,
    }),
    jobsFailed: new Counter({
      name: 'preempt_jobs_failed_total',
      help: 'job attempts that failed (final = no retry left or unrecoverable)',
      labelNames: ['queue', 'final'],
      registers: r,
    }),
    jobsRetried: new Counter({
      name: 'preempt_jobs_retried_total',
      help: 'jobs that had failed for good (attempts exhausted) put back to run, same job id, when their decision was made again',
      labelNames: ['queue'],
      registers: r,
    }),
    restrictions: new Counter({
      name: 'preempt_restrictions_total',
      help: 'reduce-only restriction changes processed by the workers (state on = applied, off = lifted; outcome applied, or superseded by a newer version)',
      labelNames: ['state', 'outcome'],
      registers: r,
    }),
    queueDepth: new Gauge({
      name: 'preempt_queue_depth',
      help: 'jobs per queue and state',
      labelNames: ['queue', 'state'],
      registers: r,
    }),
    evalLag: new Gauge({
      name: 'preempt_evaluation_lag_seconds',
      help: 'age of the newest applied event log entry when its evaluation finished',
      labelNames: ['shard'],
      registers: r,
    }),
    evalBacklog: new Gauge({
      name: 'preempt_evaluation_backlog_entries',
      help: 'event log entries after the last one a shard evaluator committed (read from Redis at scrape)',
      labelNames: ['shard'],
      registers: r,
    }),
    evalDuration: new Histogram({
      name: 'preempt_evaluation_duration_seconds',
      help: 'duration of one evaluation step (apply a batch, score, decide, write)',
      labelNames: ['shard'],
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: r,
    }),
    evalRulesOnly: new Gauge({
      name: 'preempt_evaluation_rules_only',
      help: '1 while the latest scoring of a shard failed and its accounts are decided rules-only (0 once scoring works again)',
      labelNames: ['shard'],
      registers: r,
    }),
    evalFailures: new Counter({
      name: 'preempt_evaluation_failures_total',
      help: 'failed evaluator steps by stage (rebuild, read, apply: an entry threw, flush); each is retried, no entry is skipped',
      labelNames: ['shard', 'stage'],
      registers: r,
    }),
    evalFailing: new Gauge({
      name: 'preempt_evaluation_failing_steps',
      help: 'consecutive failed steps of a shard evaluator (0 once a step succeeds; an entry that fails every time keeps it rising)',
      labelNames: ['shard'],
      registers: r,
    }),
    modelInfo: new Gauge({
      name: 'preempt_model_info',
      help: 'the model in use (value 1), its version and TF.js backend',
      labelNames: ['version', 'backend', 'mode'],
      registers: r,
    }),
    snapshotBytes: new Gauge({
      name: 'preempt_snapshot_bytes',
      help: 'bytes (gzip) of the latest state snapshot a shard wrote or restored from',
      labelNames: ['shard'],
      registers: r,
    }),
    snapshotTimestamp: new Gauge({
      name: 'preempt_snapshot_timestamp_seconds',
      help: 'when (unix seconds) the latest state snapshot a shard wrote or restored from was taken; age = time() - this',
      labelNames: ['shard'],
      registers: r,
    }),
    snapshotEntriesBehind: new Gauge({
      name: 'preempt_snapshot_entries_behind',
      help: 'log entries a shard applied after its latest state snapshot (what a restart would replay)',
      labelNames: ['shard'],
      registers: r,
    }),
    snapshotDuration: new Histogram({
      name: 'preempt_snapshot_duration_seconds',
      help: 'time to write a state snapshot (serialise, compress, store) or to restore one (read, decompress, rebuild)',
      labelNames: ['shard', 'op'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: r,
    }),
    snapshotWriteFailures: new Counter({
      name: 'preempt_snapshot_write_failures_total',
      help: 'state snapshots that failed to write, by reason: error (serialise, compress or store failed), too-large (above the size cap, not sent); retried with a backoff in entries',
      labelNames: ['shard', 'reason'],
      registers: r,
    }),
    snapshotConsecutiveFailures: new Gauge({
      name: 'preempt_snapshot_consecutive_failures',
      help: 'state snapshot writes that failed in a row (0 after one succeeds)',
      labelNames: ['shard'],
      registers: r,
    }),
    rebuilds: new Counter({
      name: 'preempt_evaluator_rebuilds_total',
      help: 'shard state rebuilds by source: snapshot (restored, then the entries after it), full-replay (the whole log), failed (neither possible: the log was trimmed past what the shard can restore)',
      labelNames: ['shard', 'source'],
      registers: r,
    }),
    logTrimmedEntries: new Counter({
      name: 'preempt_log_trimmed_entries_total',
      help: 'event log entries this process trimmed (below every shard snapshot, older than the retention)',
      registers: r,
    }),
  };
}
