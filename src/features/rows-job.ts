/**
 * Writing a range of feature rows from plain data: the one routine behind `snapshot`, `vector` and the
 * parallel snapshot workers, so a row is computed by the same code whichever thread writes it. A job holds
 * only typed arrays (the per-account ones on SharedArrayBuffers, read in place) and small cloneable data.
 */
import { emptyFlowReading, type RateNorm, readFlow } from './account-flow.js';
import type { MirrorArrays } from './margin-mirror.js';
import type { MarginInputs, MarginSweep } from './margin-sweep.js';
import type { MarketView } from './market-state.js';
import { writeRow } from './row-writer.js';
import { FEATURE_COUNT } from './schema.js';

export interface RowsJob {
  /** ms: the snapshot time */
  ts: number;
  /** 1 - exp(-observed / fast tau) */
  coverage: number;
  norm: RateNorm;
  /** market view per pipeline instrument index */
  views: MarketView[];
  margin: MarginInputs;
  /** AccountFlows.data */
  flows: Float64Array;
  mirror: MirrorArrays;
  /** account of row r: rowsIdx[r], or r when null */
  rowsIdx: Int32Array | null;
  /** the rows [from, to) this job writes */
  from: number;
  to: number;
  /** the whole matrix: row r at r * FEATURE_COUNT */
  out: Float32Array;
}

/** Write rows [job.from, job.to) into job.out, using `sweep` as scratch. */
export function runRowsJob(job: RowsJob, sweep: MarginSweep): void {
  const { ts, norm, rowsIdx, from, out, flows } = job;
  const rows = job.to - from;
  sweep.run(job.margin, job.mirror, rows, rowsIdx, from);
  const ctx = { ts, coverage: job.coverage, views: job.views };
  const flow = emptyFlowReading();
  for (let r = 0; r < rows; r++) {
    readFlow(flows, rowsIdx ? rowsIdx[from + r]! : from + r, ts, norm, flow);
    writeRow(out, (from + r) * FEATURE_COUNT, sweep, r, flow, ctx);
  }
}
