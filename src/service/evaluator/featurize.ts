/**
 * Feature rows for a history posted to `POST /v1/score`: the events are validated, replayed through a
 * fresh FeaturePipeline (the very code the evaluators and the training job use) and read at one instant.
 * An event the replay refuses (an undeclared instrument, a margin rule) is named by its index.
 */
import type { CanonicalEvent } from '../../events/schema.js';
import { parseEvent } from '../../events/validate.js';
import { FeaturePipeline } from '../../features/pipeline.js';
import { FEATURE_COUNT } from '../../features/schema.js';
import type { HistoryFeaturizer } from '../api/score.js';
import { ServiceError } from '../errors.js';

export const featurizeHistory: HistoryFeaturizer = async (raw, accounts, at) => {
  const events: CanonicalEvent[] = [];
  raw.forEach((value, index) => {
    const r = parseEvent(value);
    if (!r.ok)
      throw new ServiceError('INVALID_EVENT', `history.events.${index}: field ${r.field}: ${r.reason}`, {
        index,
        field: r.field,
        reason: r.reason,
      });
    events.push(r.event);
  });
  const pipeline = new FeaturePipeline({ toleranceMs: 0 });
  const sorted = events.map((e, i) => ({ e, i })).sort((a, b) => a.e.ts - b.e.ts || a.i - b.i);
  const refused = () => pipeline.stats.invalid + pipeline.stats.rejected;
  for (const { e, i } of sorted) {
    // in time order (tolerance 0) each event is applied at once: a refusal is this event's
    const before = refused();
    pipeline.apply(e);
    if (refused() > before)
      throw new ServiceError(
        'INVALID_EVENT',
        `history.events.${i}: ${pipeline.stats.lastRefusal ?? 'the event was refused'}`,
        { field: `history.events.${i}`, index: i },
      );
  }
  const ts = at ?? sorted[sorted.length - 1]?.e.ts ?? 0;
  const lastTs = sorted[sorted.length - 1]?.e.ts ?? 0;
  if (ts < lastTs)
    throw new ServiceError('BAD_REQUEST', `history.at (${ts}) is before the last event (${lastTs})`, {
      field: 'history.at',
    });
  if (!accounts) {
    const snap = pipeline.snapshot(ts);
    return { accounts: snap.accounts, matrix: snap.matrix, width: FEATURE_COUNT };
  }
  const matrix = new Float32Array(accounts.length * FEATURE_COUNT);
  accounts.forEach((a, i) => {
    pipeline.vector(a, ts, matrix.subarray(i * FEATURE_COUNT, (i + 1) * FEATURE_COUNT));
  });
  return { accounts: [...accounts], matrix, width: FEATURE_COUNT };
};
