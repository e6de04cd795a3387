/**
 * Turning an evaluation into what leaves the evaluator: the risk view the API serves and, for
 * LIQUIDATE / REDUCE, the execution job; for a change of the reduce-only restriction, the `restrict` job.
 */
import type { FeatureContribution } from '../../model/types.js';
import type { RiskView } from '../api/schemas.js';
import type { ExecutionJob, MarketInput, RestrictJob } from '../queue/job.js';
import type { RestrictionRecord } from '../state/restrictions.js';
import type { Evaluation, RestrictionChange } from './shard-state.js';

const finiteOrNull = (x: number): number | null => (Number.isFinite(x) ? x : null);

export function riskView(
  e: Evaluation,
  pd: number | null,
  topFeatures: FeatureContribution[],
  modelVersion: string | null,
  asOf: number,
  evaluatedAt: number,
): RiskView {
  const { decision: d, margin: m } = e;
  return {
    account: e.account,
    pd,
    marginRatio: finiteOrNull(m.marginRatio),
    equity: m.equity,
    mm: m.mm,
    im: m.im,
    freeCollateral: m.freeCollateral,
    decision: d.action,
    reasons: d.reasons.map((r) => r.text),
    reductions: d.orders.map(({ symbol, side, qty }) => ({ symbol, side, qty })),
    positions: m.positions.map((p) => ({
      symbol: p.symbol,
      qty: p.qty,
      avgEntry: p.avgEntry,
      mark: p.mark,
      notional: p.notional,
      liquidationPrice: p.liquidationPrice,
    })),
    topFeatures,
    modelVersion,
    epoch: e.epoch,
    reduceOnly: e.restriction.reduceOnly,
    reduceOnlyUntil: e.restriction.until,
    asOf,
    evaluatedAt,
  };
}

/** The job for an actionable decision, or undefined (no orders, or a symbol without market inputs). */
export function executionJob(
  e: Evaluation,
  market: (symbol: string) => MarketInput | undefined,
  modelVersion: string | null,
): ExecutionJob | undefined {
  const d = e.decision;
  if ((d.action !== 'LIQUIDATE' && d.action !== 'REDUCE') || d.orders.length === 0) return undefined;
  const inputs: Record<string, MarketInput> = {};
  for (const o of d.orders) {
    const m = market(o.symbol);
    if (!m) return undefined;
    inputs[o.symbol] = m;
  }
  return {
    kind: d.action === 'LIQUIDATE' ? 'liquidate' : 'deleverage',
    account: e.account,
    epoch: e.epoch,
    decidedAt: d.now,
    orders: d.orders.map(({ symbol, side, qty, notional }) => ({
      symbol,
      side,
      qty,
      notional,
      positionQty: e.margin.positions.find((p) => p.symbol === symbol)?.qty ?? 0,
    })),
    market: inputs,
    decision: {
      action: d.action,
      rule: d.rule,
      pd: d.pd,
      equity: d.equity,
      mm: d.mm,
      im: d.im,
      marginRatio: finiteOrNull(d.marginRatio),
      equityAfter: d.equityAfter,
      mmAfter: d.mmAfter,
      reasons: d.reasons.map((r) => r.text),
    },
    modelVersion,
  };
}

/** The `restrict` job delivering a restriction change. */
export function restrictJob(c: RestrictionChange, modelVersion: string | null): RestrictJob {
  return {
    kind: 'restrict',
    account: c.account,
    reduceOnly: c.reduceOnly,
    version: c.version,
    epoch: c.epoch,
    decidedAt: c.decidedAt,
    reason: c.reason,
    pd: c.pd,
    modelVersion,
  };
}

/** The stored record of a restriction change (`until` as known when it was made). */
export function restrictionRecord(
  c: RestrictionChange,
  until: number | null,
  jobId: string,
): RestrictionRecord {
  return {
    account: c.account,
    reduceOnly: c.reduceOnly,
    version: c.version,
    since: c.decidedAt,
    until: c.reduceOnly ? until : null,
    reason: c.reason,
    jobId,
  };
}
