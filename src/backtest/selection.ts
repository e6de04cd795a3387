/**
 * Selection: whom each signal would flag, and how early, on the liquidation-only path. One liquidation-only
 * run in which the model scores every account with a position at every look and nothing acts (the run is the
 * reference itself: same seed, same bad debt). Each signal setting is then read off the recorded looks: an
 * account is alerted at the first look that meets it (the model: pd >= p while equity / MM < gate; the rule:
 * equity / MM < T). Per setting: accounts alerted, false alarms (alerted, never liquidated), and the share of
 * the reference's bad debt on accounts alerted at least `leadMinutes` before their first liquidation.
 *
 * A threshold sweep (`runSweep`) measures what a policy does with a signal, after every reduction has
 * changed the path; this measures the signal alone, before any of that, so that the two questions can be
 * told apart: does the score pick the doomed accounts better than the ratio, and does the policy's
 * follow-through turn a pick into bad debt avoided. An alert is an upper bound on a first REDUCE: an
 * account alerted far from its maintenance margin may need no order at all.
 *
 * Two diagnostics of what a signal could know beyond the ratio: `byBehaviour` splits every setting by the
 * simulated traders' behaviour (which no model sees) and bounds a ratio rule that knows it; `byFlow` measures a
 * ratio rule with a second threshold for looks at which the account shows an order-flow trait the model sees.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FeaturePipeline } from '../features/pipeline.js';
import { F, FEATURE_COUNT } from '../features/schema.js';
import type { PdScorer } from '../model/types.js';
import { lineChart, type Series } from '../report/svg-chart.js';
import { simulate } from '../sim/simulate.js';
import { createPopulation } from '../sim/traders/population.js';
import { BEHAVIOURS } from '../sim/traders/types.js';
import { MeasureCollector } from './metrics.js';
import { runContext } from './run.js';
import {
  compareFrontiers,
  type FrontierComparison,
  type FrontierPoint,
  interpolateFrontier,
  LEVEL_WITHIN,
  paretoFrontier,
  pctText,
} from './sweep.js';

export const DEFAULT_SELECTION_PD = [0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.3, 0.5];
export const DEFAULT_SELECTION_RATIOS = [1.2, 1.5, 2, 2.5, 3, 3.5, 4, 5, 6, 8, 10, 12];

export interface SelectionOptions {
  scenario: string;
  accounts: number;
  seed: number;
  scorer: PdScorer;
  /** pd thresholds of the model's settings, each with every gate */
  pdThresholds: readonly number[];
  /** equity / MM gates of the model's settings (0: no gate) */
  gates: readonly number[];
  /** equity / MM thresholds of the margin-ratio rule */
  ratioThresholds: readonly number[];
  /** minutes: an alert at least this long before an account's first liquidation is in time; default 15 */
  leadMinutes?: number;
  /** the model's setting to judge against the rule's frontier (the policy's pdReduce and gate) */
  own: { pdReduce: number; gate: number };
  /**
   * also break every setting down by the simulated traders' behaviour (read from the scenario's population,
   * which the model never sees) and trace the behaviour-aware ratio rule's frontier (`GroupBreakdown`)
   */
  byBehaviour?: boolean;
  /**
   * also measure, for each order-flow trait of `FLOW_TRAITS` (read off the account's feature row at each look,
   * as the model sees it), the margin-ratio rule with two thresholds: one while the account shows the trait,
   * one while it does not (`FlowTraitRules`)
   */
  byFlow?: boolean;
  onMinute?: (minute: number, minutes: number) => void;
}

/**
 * Order-flow traits, each read off an account's feature row at a look: adding to a losing position, cutting
 * one, withdrawing (all three over the features' decayed windows), and cancelling far more than filling.
 */
export const FLOW_TRAITS: readonly { name: string; has: (matrix: Float32Array, at: number) => boolean }[] = [
  { name: 'adds', has: (m, o) => (m[o + F.double_down_log1p] as number) > 0 },
  { name: 'cuts', has: (m, o) => (m[o + F.cut_loss_log1p] as number) > 0 },
  { name: 'withdraws', has: (m, o) => (m[o + F.withdrawal_log1p_d] as number) > 0 },
  { name: 'cancels', has: (m, o) => (m[o + F.cancel_fill_log_ratio] as number) > 1 },
];

/** The rule with one threshold while the account shows a trait and another while it does not. */
export interface TraitRulePoint {
  /** equity / MM threshold while the account does not show the trait (0: never alerts then) */
  without: number;
  /** ... and while it does */
  with: number;
  alerted: number;
  falseAlarms: number;
  /** USD */
  badDebtInTime: number;
  inTimeShare: number;
}

/** Per trait of `FLOW_TRAITS`: every pair of the rule's thresholds (and never), its frontier, and its verdict. */
export interface FlowTraitRules {
  traits: {
    name: string;
    /** looks at which the account showed the trait */
    looksWith: number;
    points: TraitRulePoint[];
    frontier: FrontierPoint[];
    /** the frontier's false alarms at the share the policy's own setting alerts in time; null beyond it */
    atOwn: number | null;
  }[];
}

/** One setting's alerts within one group of accounts. */
export interface GroupCounts {
  alerted: number;
  falseAlarms: number;
  /** USD: bad debt of the group's accounts alerted at least leadMinutes before their first liquidation */
  badDebtInTime: number;
}

/** A point of the behaviour-aware rule's frontier: one equity / MM threshold per group (null: never alerts). */
export interface OraclePoint extends FrontierPoint {
  /** NaN (no single threshold: see `thresholds`) */
  threshold: number;
  /** per group, in the order of `GroupBreakdown.names` */
  thresholds: (number | null)[];
}

/**
 * Every setting by group (the traders' behaviour), and an oracle: a margin-ratio rule that knows each
 * account's group, with one threshold per group from the rule's grid (or none), every combination. Its
 * thresholds are chosen on the run it is judged on, so its frontier bounds what such a rule could do there.
 */
export interface GroupBreakdown {
  names: string[];
  /** accounts seen (a look or a liquidation) per group */
  accounts: number[];
  /** USD: the reference's bad debt per group */
  badDebt: number[];
  /** per setting, in the order of `points`: counts per group, in the order of `names` */
  bySetting: { label: string; counts: GroupCounts[] }[];
  oracleFrontier: OraclePoint[];
  /** the oracle frontier's false alarms at the share the policy's own setting alerts in time; null beyond it */
  oracleAtOwn: number | null;
}

export interface SelectionPoint {
  signal: 'predictive' | 'margin-ratio';
  label: string;
  /** pd (predictive) or equity / MM (margin-ratio) */
  threshold: number;
  /** equity / MM gate of a predictive setting (0: none) */
  gate?: number;
  alerted: number;
  /** alerted accounts the run never liquidated */
  falseAlarms: number;
  /** accounts with bad debt alerted at least leadMinutes before their first liquidation */
  badDebtAccountsInTime: number;
  /** USD: the bad debt of those accounts */
  badDebtInTime: number;
  /** share of the run's bad debt on those accounts (0..1; 0 when the run left none) */
  inTimeShare: number;
  /** liquidated accounts alerted at least leadMinutes before their first liquidation */
  liquidatedInTime: number;
  /** minutes from alert to first liquidation, median over the liquidated accounts alerted before it; null if none */
  medianLeadMinutes: number | null;
}

export interface SelectionResult {
  scenario: string;
  accounts: number;
  seed: number;
  minutes: number;
  leadMinutes: number;
  reference: {
    /** USD */
    badDebt: number;
    liquidated: number;
    badDebtAccounts: number;
    /** looks recorded (an account with a position, equity / MM below the largest threshold or gate) */
    looks: number;
  };
  points: SelectionPoint[];
  frontiers: { predictive: FrontierPoint[]; ratio: FrontierPoint[] };
  /** the model's frontier (every setting) against the rule's, by share of bad debt alerted in time */
  comparison: FrontierComparison;
  /** the model at `own` against the rule's frontier at the same share; null when the rule never reaches it */
  own: {
    point: SelectionPoint;
    ratioFalseAlarms: number | null;
    /** predictive minus rule (negative: fewer) */
    diff: number | null;
    /** fewer / level (|diff| <= LEVEL_WITHIN) / more; beyond: the rule never alerts as much in time */
    verdict: 'fewer' | 'level' | 'more' | 'beyond';
  };
  /** with `byBehaviour` */
  groups?: GroupBreakdown;
  /** with `byFlow` */
  flow?: FlowTraitRules;
}

/** Growable column store of the recorded looks. */
class Looks {
  account = new Int32Array(1 << 16);
  minute = new Int32Array(1 << 16);
  pd = new Float32Array(1 << 16);
  ratio = new Float32Array(1 << 16);
  /** bit k: the account showed `FLOW_TRAITS[k]` at the look (only with `byFlow`) */
  traits = new Uint8Array(1 << 16);
  n = 0;
  push(account: number, minute: number, pd: number, ratio: number, traits = 0): void {
    if (this.n === this.account.length) {
      const grow = <T extends Int32Array | Float32Array | Uint8Array>(a: T): T => {
        const b = new (a.constructor as new (n: number) => T)(a.length * 2);
        b.set(a);
        return b;
      };
      this.account = grow(this.account);
      this.minute = grow(this.minute);
      this.pd = grow(this.pd);
      this.ratio = grow(this.ratio);
      this.traits = grow(this.traits);
    }
    this.account[this.n] = account;
    this.minute[this.n] = minute;
    this.pd[this.n] = pd;
    this.ratio[this.n] = ratio;
    this.traits[this.n] = traits;
    this.n++;
  }
}

function check(name: string, values: readonly number[], min: number, allowZero = false): void {
  for (const v of values)
    if (!Number.isFinite(v) || (allowZero ? v < 0 : v <= min))
      throw new RangeError(`selection: ${name} must be ${allowZero ? '>= 0' : `> ${min}`} (got ${v})`);
}

export async function runSelection(opts: SelectionOptions): Promise<SelectionResult> {
  const lead = opts.leadMinutes ?? 15;
  check('pd thresholds', opts.pdThresholds, 0);
  check('gates', opts.gates, 0, true);
  check('ratio thresholds', opts.ratioThresholds, 0);
  check('lead minutes', [lead], 0, true);
  const pdSettings = [...new Set(opts.pdThresholds)];
  if (!pdSettings.includes(opts.own.pdReduce)) pdSettings.push(opts.own.pdReduce);
  const gates = [...new Set(opts.gates)];
  if (!gates.includes(opts.own.gate)) gates.push(opts.own.gate);
  // looks are kept only where some setting could alert: below the largest threshold or gate (no gate: all)
  const record = gates.includes(0) ? Number.POSITIVE_INFINITY : Math.max(...gates, ...opts.ratioThresholds);

  const ctx = runContext(opts);
  const pipeline = new FeaturePipeline();
  const collector = new MeasureCollector(ctx.fundStart);
  const index = new Map<string, number>();
  /** the account's index in the columns below, given on first sight */
  const indexOf = (account: string): number => {
    let i = index.get(account);
    if (i === undefined) {
      i = index.size;
      index.set(account, i);
    }
    return i;
  };
  const firstLiquidation: number[] = []; // minute (epoch ms / 60,000) per account index
  const looks = new Looks();
  const summary = await simulate(ctx.loaded, {
    accounts: ctx.accounts,
    seed: ctx.seed,
    market: ctx.market,
    riskEngine: async (c) => {
      const snap = pipeline.snapshot(c.ts, { onlyWithPosition: true });
      if (snap.rows > 0) {
        const pd = await opts.scorer.score(snap.matrix, snap.rows);
        const minute = Math.round(c.ts / 60_000);
        for (let r = 0; r < snap.rows; r++) {
          const account = snap.accounts[r] as string;
          const m = c.book.snapshot(account, { prices: false });
          if (!m || m.positions.length === 0 || !(m.marginRatio < record)) continue;
          let traits = 0;
          if (opts.byFlow)
            FLOW_TRAITS.forEach((t, k) => {
              if (t.has(snap.matrix, r * FEATURE_COUNT)) traits |= 1 << k;
            });
          looks.push(indexOf(account), minute, pd[r] as number, m.marginRatio, traits);
        }
      }
      return { reductions: [], reduceOnly: [], leverageCaps: [] };
    },
    sink: {
      write: (ev) => {
        collector.add(ev);
        pipeline.apply(ev);
        if (ev.type === 'liquidation') {
          const i = indexOf(ev.account);
          if (firstLiquidation[i] === undefined) firstLiquidation[i] = ev.ts / 60_000;
        }
      },
    },
    ...(opts.onMinute ? { onMinute: (m: number, n: number) => opts.onMinute?.(m + 1, n) } : {}),
  });

  const n = index.size;
  const liq = new Float64Array(n).fill(Number.POSITIVE_INFINITY);
  for (let i = 0; i < n; i++) if (firstLiquidation[i] !== undefined) liq[i] = firstLiquidation[i] as number;
  const bad = new Float64Array(n);
  for (const [account, usd] of collector.badDebtByAccount) {
    const i = index.get(account);
    if (i !== undefined) bad[i] = usd;
  }
  const totalBad = collector.m.badDebt;

  // the group of each account index (-1: none), from the scenario's population
  const groupNames: string[] = opts.byBehaviour ? [...BEHAVIOURS] : [];
  const group = new Int32Array(n).fill(-1);
  if (opts.byBehaviour) {
    const behaviourOf = new Map<string, number>();
    for (const t of createPopulation(ctx.loaded.scenario, ctx.accounts, ctx.seed))
      behaviourOf.set(t.id, BEHAVIOURS.indexOf(t.behaviour));
    for (const [account, i] of index) group[i] = behaviourOf.get(account) ?? -1;
  }
  const bySetting: { label: string; counts: GroupCounts[] }[] = [];

  /** minute of each account's first look that meets `alerts` (Infinity: none) */
  const firstOf = (alerts: (k: number) => boolean): Float64Array => {
    const first = new Float64Array(n).fill(Number.POSITIVE_INFINITY);
    for (let k = 0; k < looks.n; k++) {
      const i = looks.account[k] as number;
      const t = looks.minute[k] as number;
      if (t < (first[i] as number) && alerts(k)) first[i] = t;
    }
    return first;
  };
  /** a setting's counts from each account's first alert, in all and per group */
  const tally = (
    signal: SelectionPoint['signal'],
    label: string,
    threshold: number,
    first: Float64Array,
    gate?: number,
  ): { point: SelectionPoint; counts: GroupCounts[] } => {
    let alerted = 0;
    let falseAlarms = 0;
    let badAccounts = 0;
    let badInTime = 0;
    let liquidatedInTime = 0;
    const leads: number[] = [];
    const counts: GroupCounts[] = groupNames.map(() => ({ alerted: 0, falseAlarms: 0, badDebtInTime: 0 }));
    for (let i = 0; i < n; i++) {
      const f = first[i] as number;
      if (!Number.isFinite(f)) continue;
      alerted++;
      const c = counts[group[i] as number];
      if (c) c.alerted++;
      const l = liq[i] as number;
      if (!Number.isFinite(l)) {
        falseAlarms++;
        if (c) c.falseAlarms++;
        continue;
      }
      if (f <= l) leads.push(l - f);
      if (l - f >= lead) {
        liquidatedInTime++;
        if ((bad[i] as number) > 0) {
          badAccounts++;
          badInTime += bad[i] as number;
          if (c) c.badDebtInTime += bad[i] as number;
        }
      }
    }
    leads.sort((a, b) => a - b);
    const point: SelectionPoint = {
      signal,
      label,
      threshold,
      ...(gate !== undefined ? { gate } : {}),
      alerted,
      falseAlarms,
      badDebtAccountsInTime: badAccounts,
      badDebtInTime: badInTime,
      inTimeShare: totalBad > 0 ? badInTime / totalBad : 0,
      liquidatedInTime,
      medianLeadMinutes: leads.length ? (leads[(leads.length - 1) >> 1] as number) : null,
    };
    return { point, counts };
  };
  /** a setting of `points` (its group counts kept, with `byBehaviour`) */
  const point = (
    signal: SelectionPoint['signal'],
    label: string,
    threshold: number,
    alerts: (k: number) => boolean,
    gate?: number,
  ): SelectionPoint => {
    const t = tally(signal, label, threshold, firstOf(alerts), gate);
    if (opts.byBehaviour) bySetting.push({ label, counts: t.counts });
    return t.point;
  };

  const points: SelectionPoint[] = [];
  for (const g of gates)
    for (const p of pdSettings)
      points.push(
        point(
          'predictive',
          g > 0 ? `pd>=${p} ratio<${g}` : `pd>=${p}`,
          p,
          (k) => (looks.pd[k] as number) >= p && (g === 0 || (looks.ratio[k] as number) < g),
          g,
        ),
      );
  for (const t of [...new Set(opts.ratioThresholds)])
    points.push(point('margin-ratio', `ratio<${t}`, t, (k) => (looks.ratio[k] as number) < t));

  const asFrontier = (p: SelectionPoint): FrontierPoint => ({
    avoided: p.inTimeShare,
    falseAlarms: p.falseAlarms,
    threshold: p.threshold,
    label: p.label,
  });
  const predictive = paretoFrontier(points.filter((p) => p.signal === 'predictive').map(asFrontier));
  const ratio = paretoFrontier(points.filter((p) => p.signal === 'margin-ratio').map(asFrontier));
  const comparison = compareFrontiers(predictive, ratio, 'predictive', 'margin-ratio');
  const ownPoint = points.find(
    (p) => p.signal === 'predictive' && p.threshold === opts.own.pdReduce && p.gate === opts.own.gate,
  ) as SelectionPoint;
  const ratioAt = falseAlarmsAtShare(ratio, ownPoint.inTimeShare);
  const diff = ratioAt === null ? null : ownPoint.falseAlarms - ratioAt;

  let flow: FlowTraitRules | undefined;
  if (opts.byFlow) {
    const thresholds = [0, ...new Set(opts.ratioThresholds)];
    flow = {
      traits: FLOW_TRAITS.map((t, k) => {
        const bit = 1 << k;
        // each account's first look below each threshold, apart for looks with and without the trait: a
        // pair's first alert is the earlier of the two (one pass over the looks per trait, not per pair)
        const firstBelow = (shows: boolean) =>
          thresholds.map((th) =>
            firstOf(
              (j) => ((looks.traits[j] as number) & bit ? shows : !shows) && (looks.ratio[j] as number) < th,
            ),
          );
        const withoutFirst = firstBelow(false);
        const withFirst = firstBelow(true);
        let looksWith = 0;
        for (let j = 0; j < looks.n; j++) if ((looks.traits[j] as number) & bit) looksWith++;
        const traitPoints: TraitRulePoint[] = [];
        const first = new Float64Array(n);
        for (const [a, without] of thresholds.entries())
          for (const [b, withT] of thresholds.entries()) {
            const fa = withoutFirst[a] as Float64Array;
            const fb = withFirst[b] as Float64Array;
            for (let i = 0; i < n; i++) first[i] = Math.min(fa[i] as number, fb[i] as number);
            const p = tally('margin-ratio', '', 0, first).point;
            traitPoints.push({
              without,
              with: withT,
              alerted: p.alerted,
              falseAlarms: p.falseAlarms,
              badDebtInTime: p.badDebtInTime,
              inTimeShare: p.inTimeShare,
            });
          }
        const frontier = paretoFrontier(
          traitPoints.map((p) => ({
            avoided: p.inTimeShare,
            falseAlarms: p.falseAlarms,
            threshold: p.without,
            label: `ratio<${p.without} without ${t.name}, <${p.with} with`,
          })),
        );
        const atOwn = falseAlarmsAtShare(frontier, ownPoint.inTimeShare);
        return { name: t.name, looksWith, points: traitPoints, frontier, atOwn };
      }),
    };
  }

  let groups: GroupBreakdown | undefined;
  if (opts.byBehaviour) {
    const ruleSettings = points
      .map((p, k) => ({ p, counts: (bySetting[k] as { counts: GroupCounts[] }).counts }))
      .filter((x) => x.p.signal === 'margin-ratio');
    const oracleFrontier = groupRuleFrontier(
      groupNames.length,
      ruleSettings.map((x) => ({ threshold: x.p.threshold, counts: x.counts })),
      totalBad,
    );
    const accounts = groupNames.map(() => 0);
    const badDebt = groupNames.map(() => 0);
    for (let i = 0; i < n; i++) {
      const g = group[i] as number;
      if (g < 0) continue;
      accounts[g] = (accounts[g] as number) + 1;
      badDebt[g] = (badDebt[g] as number) + (bad[i] as number);
    }
    const oracleAtOwn = falseAlarmsAtShare(oracleFrontier, ownPoint.inTimeShare);
    groups = { names: groupNames, accounts, badDebt, bySetting, oracleFrontier, oracleAtOwn };
  }
  const verdict =
    diff === null ? 'beyond' : Math.abs(diff) <= LEVEL_WITHIN ? 'level' : diff < 0 ? 'fewer' : 'more';
  return {
    scenario: opts.scenario,
    accounts: opts.accounts,
    seed: opts.seed,
    minutes: summary.minutes,
    leadMinutes: lead,
    reference: {
      badDebt: totalBad,
      liquidated: collector.liquidatedAccounts.size,
      badDebtAccounts: collector.badDebtByAccount.size,
      looks: looks.n,
    },
    points,
    frontiers: { predictive, ratio },
    comparison,
    own: { point: ownPoint, ratioFalseAlarms: ratioAt, diff, verdict },
    ...(groups ? { groups } : {}),
    ...(flow ? { flow } : {}),
  };
}

/**
 * A frontier's false alarms at a share of bad debt alerted in time: interpolated on it; below its range its first
 * point (it alerts in time at least that much with so many); above its range null.
 */
export function falseAlarmsAtShare(frontier: readonly FrontierPoint[], share: number): number | null {
  const first = frontier[0];
  if (first && share < first.avoided) return first.falseAlarms;
  return interpolateFrontier(frontier, share);
}

/**
 * The frontier of a margin-ratio rule with one threshold per group: each group alerts at one of the rule's
 * thresholds or never, and since the groups' accounts are disjoint a combination's false alarms and bad debt
 * in time are the sums of its groups'. Merged group by group, keeping only Pareto points (more bad debt in
 * time, fewer false alarms), so every combination is covered without listing them all.
 */
export function groupRuleFrontier(
  groupCount: number,
  settings: readonly { threshold: number; counts: readonly GroupCounts[] }[],
  totalBadDebt: number,
): OraclePoint[] {
  // merged in USD of bad debt in time (`avoided` holds dollars until the end), pruned by `paretoFrontier`
  let acc: OraclePoint[] = [{ avoided: 0, falseAlarms: 0, threshold: Number.NaN, thresholds: [] }];
  for (let g = 0; g < groupCount; g++) {
    const options = [
      { bad: 0, fa: 0, threshold: null as number | null },
      ...settings.map((s) => ({
        bad: (s.counts[g] as GroupCounts).badDebtInTime,
        fa: (s.counts[g] as GroupCounts).falseAlarms,
        threshold: s.threshold as number | null,
      })),
    ];
    const next: OraclePoint[] = [];
    for (const a of acc)
      for (const o of options)
        next.push({
          avoided: a.avoided + o.bad,
          falseAlarms: a.falseAlarms + o.fa,
          threshold: Number.NaN,
          thresholds: [...a.thresholds, o.threshold],
        });
    acc = paretoFrontier(next) as OraclePoint[];
  }
  return acc.map((x) => ({ ...x, avoided: totalBadDebt > 0 ? x.avoided / totalBadDebt : 0 }));
}

/** The table on stdout (and in selection.md): one row per setting, then the two verdicts. */
export function formatSelection(r: SelectionResult): string {
  const lines = [
    `${r.scenario}, ${r.accounts} accounts, seed ${r.seed}, ${r.minutes} simulated minutes; liquidation-only: bad debt $${Math.round(r.reference.badDebt).toLocaleString('en-US')} on ${r.reference.badDebtAccounts} accounts, ${r.reference.liquidated} accounts liquidated`,
    `an alert is in time at least ${r.leadMinutes} min before the account's first liquidation; nothing acts on the alerts`,
    '',
    '| signal | setting | alerted | false alarms | bad-debt accounts in time | bad debt in time | liquidated in time | median lead (min) |',
    '|---|---|---|---|---|---|---|---|',
  ];
  for (const p of r.points)
    lines.push(
      `| ${p.signal} | ${p.label} | ${p.alerted} | ${p.falseAlarms} | ${p.badDebtAccountsInTime} | ${pctText(p.inTimeShare)} ($${Math.round(p.badDebtInTime).toLocaleString('en-US')}) | ${p.liquidatedInTime} | ${p.medianLeadMinutes === null ? '-' : Math.round(p.medianLeadMinutes)} |`,
    );
  const o = r.own;
  const at =
    o.ratioFalseAlarms === null
      ? 'the margin-ratio rule never alerts as much in time'
      : `the margin-ratio frontier at the same share: about ${Math.round(o.ratioFalseAlarms)} (${o.verdict === 'level' ? `level, within ${LEVEL_WITHIN}` : `${Math.round(Math.abs(o.diff as number))} ${o.verdict}`})`;
  lines.push(
    '',
    `frontiers (every setting of each signal): ${r.comparison.verdict.replace('bad debt avoided', 'share of bad debt alerted in time')}`,
    `at the policy's own settings (${o.point.label}): ${pctText(o.point.inTimeShare)} of the bad debt alerted in time with ${o.point.falseAlarms} false alarms; ${at}`,
  );
  if (r.groups) lines.push('', ...formatGroups(r, r.groups));
  if (r.flow) {
    lines.push(
      '',
      "the rule with one threshold while an account shows an order-flow trait (at that look, as the model sees it) and another while it does not, every pair, in sample: false alarms at the own setting's share",
    );
    for (const t of r.flow.traits)
      lines.push(
        `- ${t.name} (${t.looksWith} of ${r.reference.looks} looks): ${t.atOwn === null ? 'never alerts as much in time' : `about ${Math.round(t.atOwn)}`}`,
      );
  }
  return lines.join('\n');
}

/** The behaviour breakdown: the policy's own setting and the rule at its gate, per behaviour; then the oracle. */
function formatGroups(r: SelectionResult, g: GroupBreakdown): string[] {
  const usd = (x: number) => `$${Math.round(x).toLocaleString('en-US')}`;
  const own = r.own.point;
  const shown = [own.label];
  const rule = r.points.find((p) => p.signal === 'margin-ratio' && p.threshold === own.gate);
  if (rule) shown.push(rule.label);
  const lines = [
    "by behaviour (the simulated traders' behaviour, which the model never sees): alerted / false alarms / bad debt in time",
    '',
    `| behaviour | accounts seen | bad debt | ${shown.join(' | ')} |`,
    `|---|---|---|${shown.map(() => '---').join('|')}|`,
  ];
  const countsOf = (label: string) => g.bySetting.find((b) => b.label === label)?.counts;
  g.names.forEach((name, k) => {
    const cells = shown.map((label) => {
      const c = countsOf(label)?.[k];
      return c ? `${c.alerted} / ${c.falseAlarms} / ${usd(c.badDebtInTime)}` : '-';
    });
    lines.push(`| ${name} | ${g.accounts[k]} | ${usd(g.badDebt[k] as number)} | ${cells.join(' | ')} |`);
  });
  const at =
    g.oracleAtOwn === null
      ? 'it never alerts as much in time'
      : `about ${Math.round(g.oracleAtOwn)} false alarms at the share the own setting alerts in time (${pctText(own.inTimeShare)}; the plain rule: ${r.own.ratioFalseAlarms === null ? '-' : `about ${Math.round(r.own.ratioFalseAlarms)}`}; the model: ${own.falseAlarms})`;
  lines.push(
    '',
    `a ratio rule that knows each account's behaviour (one threshold per behaviour, chosen on this run: an upper bound for such a rule): ${at}`,
  );
  return lines;
}

/** Both signals' frontiers and every setting, false alarms against the share of bad debt alerted in time. */
export function selectionChart(r: SelectionResult): string {
  const series: Series[] = [
    {
      name: 'predictive frontier',
      points: r.frontiers.predictive.map((p) => ({ x: p.avoided * 100, y: p.falseAlarms })),
    },
    {
      name: 'margin-ratio frontier',
      points: r.frontiers.ratio.map((p) => ({ x: p.avoided * 100, y: p.falseAlarms })),
    },
  ];
  const gates = [...new Set(r.points.filter((p) => p.signal === 'predictive').map((p) => p.gate ?? 0))];
  const line = (pts: SelectionPoint[]) =>
    [...pts]
      .sort((a, b) => a.threshold - b.threshold)
      .map((p) => ({ x: p.inTimeShare * 100, y: p.falseAlarms }));
  for (const g of gates)
    series.push({
      name:
        g > 0
          ? `predictive at equity/MM < ${g}, all pd thresholds`
          : 'predictive, no gate, all pd thresholds',
      points: line(r.points.filter((p) => p.signal === 'predictive' && (p.gate ?? 0) === g)),
      dashed: true,
    });
  series.push({
    name: 'margin-ratio, all thresholds',
    points: line(r.points.filter((p) => p.signal === 'margin-ratio')),
    dashed: true,
  });
  return lineChart(series, {
    title: `Alerts on the liquidation-only path: ${r.scenario}, seed ${r.seed}`,
    xLabel: `bad debt alerted at least ${r.leadMinutes} min before liquidation (% of liquidation-only)`,
    yLabel: 'false alarms (accounts)',
  });
}

/** Writes selection.json, selection.md and frontier.svg into `dir` (created if need be). */
export async function writeSelectionReport(
  dir: string,
  r: SelectionResult,
  extra: object = {},
): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'selection.json'), `${JSON.stringify({ ...r, ...extra }, null, 2)}\n`);
  await writeFile(
    join(dir, 'selection.md'),
    `# Selection: ${r.scenario}, seed ${r.seed}\n\n${formatSelection(r)}\n\n![frontiers](frontier.svg)\n`,
  );
  await writeFile(join(dir, 'frontier.svg'), selectionChart(r));
}
