/**
 * Why an early-reducing policy left the bad debt it left: every USD of its bad debt (bankruptcy deficit, and
 * what ADL cost the counterparties of that bankruptcy) is attributed to the account that went bankrupt, and
 * each bankruptcy to one cause, judged from what the risk engine saw of that account before it (looks once a
 * simulated minute, after the minute's first liquidation pass):
 *
 *  - `gap`: bankrupt within one minute from healthy: at the engine's last look (the previous minute, at most
 *    60 s earlier) the account had equity / MM >= the margin core's watch level (`marginRatioWatch`, 1.5 by
 *    default) and its signal was below `pdReduce`; or it held no position at that look.
 *  - `never-alerted`: the signal never reached `pdReduce` before the bankruptcy.
 *  - `late`: alerted, but its first REDUCE came less than `lateMinutes` before the bankruptcy (or never);
 *    `alertedEarly` counts those alerted at least `lateMinutes` before, whose first REDUCE the sizing
 *    (target already met, below the minimum order, caps) delayed.
 *  - `too-small`: reduced at least `lateMinutes` before, still bankrupt: the reductions (per-interval and
 *    depth caps, k-sigma target) were not enough, or the trader took the risk back: `tooSmallReRisked` counts
 *    those whose maintenance margin at the last look was above what it was at their first REDUCE (exposure
 *    added after being reduced); `tooSmallCappedDecisions` the REDUCE decisions the interval or depth cap
 *    bound; `tooSmallJumped` those at equity / MM >= the watch level at the last look (a jump of more than
 *    their margin within a minute, while alerted).
 *
 * The causes are tested in that order. "The signal" is the pd fed to `decide` (the model's, or the
 * margin-ratio rule's 0/1). The account's history restarts after each bankruptcy; bad-debt events of one
 * account at one timestamp are one bankruptcy.
 */
import type { Decision } from '../margin/index.js';

export const BAD_DEBT_CAUSES = ['gap', 'never-alerted', 'late', 'too-small'] as const;
export type BadDebtCause = (typeof BAD_DEBT_CAUSES)[number];

export interface AttributionOptions {
  /** the signal level that counts as an alert (the policy's pdReduce) */
  pdReduce: number;
  /** equity / MM at or above which an account counts as healthy (the policy's marginRatioWatch) */
  healthyRatio: number;
  /** a first REDUCE less than this many minutes before the bankruptcy is late; default 15 */
  lateMinutes?: number;
}

export interface CauseTotal {
  /** USD */
  badDebt: number;
  /** distinct accounts */
  accounts: number;
  bankruptcies: number;
}

export interface BankruptcyRecord {
  account: string;
  /** ms */
  ts: number;
  /** USD: deficit + ADL cost of this bankruptcy */
  badDebt: number;
  cause: BadDebtCause;
  /** minutes before the bankruptcy; null if never */
  firstAlertMinutesBefore: number | null;
  firstReduceMinutesBefore: number | null;
  lastReduceMinutesBefore: number | null;
  reduceDecisions: number;
  /** USD: notional of the REDUCE decisions (as planned by the core) */
  plannedReducedNotional: number;
  /** equity / MM at the engine's last look (null: no position then) */
  lastLookMarginRatio: number | null;
  lastLookSignal: number | null;
  /** USD: maintenance margin at the first REDUCE and at the last look (null: none) */
  mmAtFirstReduce: number | null;
  lastLookMm: number | null;
}

/** a first REDUCE less than this many minutes before a bankruptcy is late, by default */
export const DEFAULT_LATE_MINUTES = 15;

export interface BadDebtAttribution {
  lateMinutes: number;
  healthyRatio: number;
  pdReduce: number;
  /** USD: sums to the run's bad debt */
  total: number;
  causes: Record<BadDebtCause, CauseTotal>;
  /** part of `late`: alerted at least lateMinutes before, first REDUCE later or never */
  lateAlertedEarly: CauseTotal;
  /** part of `too-small`: more maintenance margin at the last look than at the first REDUCE */
  tooSmallReRisked: CauseTotal;
  /** part of `too-small`: equity / MM >= healthyRatio at the last look (bankrupt within a minute from there) */
  tooSmallJumped: CauseTotal;
  /** part of `too-small`: REDUCE decisions in total, and those bound by the interval or depth cap */
  tooSmallReduceDecisions: number;
  tooSmallCappedDecisions: number;
  /** the largest bankruptcies (by bad debt), at most 10 */
  largest: BankruptcyRecord[];
  /** every bankruptcy, in the order reported (time order in a run; not written to the reports) */
  bankruptcies: BankruptcyRecord[];
}

interface AccountHistory {
  firstAlertTs: number | null;
  firstReduceTs: number | null;
  lastReduceTs: number | null;
  mmAtFirstReduce: number | null;
  reduceDecisions: number;
  cappedDecisions: number;
  plannedReducedNotional: number;
  lastLook: { ts: number; marginRatio: number; mm: number; signal: number } | null;
}

interface Bankruptcy extends BankruptcyRecord {
  cappedDecisions: number;
  alertedEarly: boolean;
}

const GAP_MS = 60_000;

export class AttributionTracker {
  private readonly history = new Map<string, AccountHistory>();
  private readonly open = new Map<string, Bankruptcy>();
  private readonly bankruptcies: Bankruptcy[] = [];
  private readonly lateMs: number;

  constructor(private readonly o: AttributionOptions) {
    this.lateMs = (o.lateMinutes ?? DEFAULT_LATE_MINUTES) * 60_000;
  }

  private hist(account: string): AccountHistory {
    let h = this.history.get(account);
    if (!h) {
      h = {
        firstAlertTs: null,
        firstReduceTs: null,
        lastReduceTs: null,
        mmAtFirstReduce: null,
        reduceDecisions: 0,
        cappedDecisions: 0,
        plannedReducedNotional: 0,
        lastLook: null,
      };
      this.history.set(account, h);
    }
    return h;
  }

  /** The engine looked at `account` at `ts`, fed `signal` to decide and got `decision`. */
  look(ts: number, account: string, signal: number, decision: Decision): void {
    const h = this.hist(account);
    const alerted = Number.isFinite(signal) && signal >= this.o.pdReduce;
    if (alerted && h.firstAlertTs === null) h.firstAlertTs = ts;
    if (decision.action === 'REDUCE') {
      h.reduceDecisions++;
      if (h.firstReduceTs === null) {
        h.firstReduceTs = ts;
        h.mmAtFirstReduce = decision.mm;
      }
      h.lastReduceTs = ts;
      const values = decision.reasons[0]?.values ?? {};
      const planned = values.reducedNotional;
      if (typeof planned === 'number') h.plannedReducedNotional += planned;
      const capped = values.cappedBy;
      if (typeof capped === 'string' && /(^|,)(interval|depth)/.test(capped)) h.cappedDecisions++;
    }
    h.lastLook = { ts, marginRatio: decision.marginRatio, mm: decision.mm, signal };
  }

  /** USD of bad debt of `account` at `ts` (a bankruptcy deficit or the ADL cost of its bankruptcy). */
  badDebt(account: string, ts: number, usd: number): void {
    const cur = this.open.get(account);
    if (cur && cur.ts === ts) {
      cur.badDebt += usd;
      return;
    }
    const h = this.hist(account);
    const look = h.lastLook && ts - h.lastLook.ts <= GAP_MS ? h.lastLook : null;
    const before = (t: number | null) => (t === null ? null : (ts - t) / 60_000);
    let cause: BadDebtCause;
    if (look === null || (look.marginRatio >= this.o.healthyRatio && !(look.signal >= this.o.pdReduce)))
      cause = 'gap';
    else if (h.firstAlertTs === null) cause = 'never-alerted';
    else if (h.firstReduceTs === null || ts - h.firstReduceTs < this.lateMs) cause = 'late';
    else cause = 'too-small';
    const b: Bankruptcy = {
      account,
      ts,
      badDebt: usd,
      cause,
      firstAlertMinutesBefore: before(h.firstAlertTs),
      firstReduceMinutesBefore: before(h.firstReduceTs),
      lastReduceMinutesBefore: before(h.lastReduceTs),
      reduceDecisions: h.reduceDecisions,
      plannedReducedNotional: h.plannedReducedNotional,
      lastLookMarginRatio: look?.marginRatio ?? null,
      lastLookSignal: look?.signal ?? null,
      mmAtFirstReduce: h.mmAtFirstReduce,
      lastLookMm: look?.mm ?? null,
      cappedDecisions: h.cappedDecisions,
      alertedEarly: h.firstAlertTs !== null && ts - h.firstAlertTs >= this.lateMs,
    };
    this.bankruptcies.push(b);
    this.open.set(account, b);
    // the account's history restarts after a bankruptcy
    this.history.delete(account);
  }

  result(): BadDebtAttribution {
    const zero = (): CauseTotal => ({ badDebt: 0, accounts: 0, bankruptcies: 0 });
    const causes = Object.fromEntries(BAD_DEBT_CAUSES.map((c) => [c, zero()])) as Record<
      BadDebtCause,
      CauseTotal
    >;
    const lateAlertedEarly = zero();
    const tooSmallReRisked = zero();
    const tooSmallJumped = zero();
    const seen = new Map<string, Set<string>>();
    const count = (t: CauseTotal, key: string, b: Bankruptcy) => {
      t.badDebt += b.badDebt;
      t.bankruptcies++;
      let s = seen.get(key);
      if (!s) {
        s = new Set();
        seen.set(key, s);
      }
      if (!s.has(b.account)) {
        s.add(b.account);
        t.accounts++;
      }
    };
    let total = 0;
    let tooSmallReduceDecisions = 0;
    let tooSmallCappedDecisions = 0;
    for (const b of this.bankruptcies) {
      total += b.badDebt;
      count(causes[b.cause], b.cause, b);
      if (b.cause === 'late' && b.alertedEarly) count(lateAlertedEarly, 'late-early', b);
      if (b.cause === 'too-small') {
        if (b.lastLookMm !== null && b.mmAtFirstReduce !== null && b.lastLookMm > b.mmAtFirstReduce)
          count(tooSmallReRisked, 'too-small-re-risked', b);
        if (b.lastLookMarginRatio !== null && b.lastLookMarginRatio >= this.o.healthyRatio)
          count(tooSmallJumped, 'too-small-jumped', b);
        tooSmallReduceDecisions += b.reduceDecisions;
        tooSmallCappedDecisions += b.cappedDecisions;
      }
    }
    const records = this.bankruptcies.map(({ cappedDecisions: _c, alertedEarly: _a, ...r }) => ({ ...r }));
    const largest = [...records].sort((a, b) => b.badDebt - a.badDebt || a.ts - b.ts).slice(0, 10);
    return {
      lateMinutes: this.lateMs / 60_000,
      healthyRatio: this.o.healthyRatio,
      pdReduce: this.o.pdReduce,
      total,
      causes,
      lateAlertedEarly,
      tooSmallReRisked,
      tooSmallJumped,
      tooSmallReduceDecisions,
      tooSmallCappedDecisions,
      largest,
      bankruptcies: records,
    };
  }
}
