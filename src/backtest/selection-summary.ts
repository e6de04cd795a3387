/**
 * What a rule that knows more than the ratio could do, read from `preempt selection --by-behaviour` or
 * `--by-flow` results (selection.json) of many days and seeds, without running anything. Per run, at the share
 * of bad debt the model's own setting alerts in time:
 *  - R: the plain ratio rule's frontier false alarms there (as `selection` judges); M: the model's own;
 *  - in sample: the richer rule's frontier there (its thresholds chosen on that very run: an upper bound);
 *  - out of seed (groups only): its thresholds chosen on the other seeds of the same day, pooled;
 *  - leave one day out: chosen on every other day's runs, pooled.
 * A choice on pooled runs is the richer rule's setting with the fewest pooled false alarms among those whose
 * pooled share of bad debt alerted in time reaches the model's own pooled share; it is then applied to the
 * held-out run and judged against that run's plain rule frontier at the share it reaches there.
 * A gain is (R - F) / R for a rule with F false alarms: the share of the plain rule's false alarms it saves.
 */
import type { GroupCounts, SelectionResult, TraitRulePoint } from './selection.js';
import { falseAlarmsAtShare, groupRuleFrontier } from './selection.js';
import { LEVEL_WITHIN, paretoFrontier } from './sweep.js';

/** The parts of a selection result this reads (what selection.json holds). */
export type SelectionRun = Pick<
  SelectionResult,
  'scenario' | 'seed' | 'points' | 'own' | 'groups' | 'flow'
> & {
  reference: Pick<SelectionResult['reference'], 'badDebt'>;
};

/** One richer rule's setting measured on one run. */
interface Measured {
  falseAlarms: number;
  /** USD */
  badDebtInTime: number;
}

export interface Judged {
  /** share of the run's bad debt alerted in time (0..1) */
  share: number;
  falseAlarms: number;
  /** the plain rule's frontier false alarms at that share; null when it never alerts as much in time */
  ratioFalseAlarms: number | null;
  /** (ratioFalseAlarms - falseAlarms) / ratioFalseAlarms; null beyond the rule or when it raises none */
  gain: number | null;
  /** fewer / level (within LEVEL_WITHIN) / more than the plain rule; beyond: it never alerts as much */
  verdict: 'fewer' | 'level' | 'more' | 'beyond';
  /** the setting chosen: per group thresholds (null: never), or a trait's [without, with] */
  setting: (number | null)[];
}

export interface RunRow {
  scenario: string;
  seed: number;
  /** the model's own setting: share alerted in time, false alarms, gain over the plain rule */
  own: { share: number; falseAlarms: number; ratioFalseAlarms: number | null; gain: number | null };
  /** the richer rule's gain in sample: its frontier (every setting, on this run) at the own setting's share */
  inSample: number | null;
  outOfSeed: Judged | null;
  leaveOneDayOut: Judged | null;
}

/** Totals over the runs per group: where the bad debt and the false alarms are. */
export interface GroupTotals {
  name: string;
  /** USD: the liquidation-only bad debt of the group's accounts */
  badDebt: number;
  /** the model's own setting, and the plain rule at the own setting's gate (null when a run lacks it) */
  own: GroupCounts;
  ruleAtGate: GroupCounts | null;
}

export interface RuleSummary {
  /** 'behaviour' or the trait's name */
  rule: string;
  /** behaviour only: per group, summed over the runs */
  totals?: GroupTotals[];
  rows: RunRow[];
  median: {
    model: number | null;
    inSample: number | null;
    outOfSeed: number | null;
    leaveOneDayOut: number | null;
  };
  /** leave one day out against the plain rule, as `selection` judges a setting */
  verdicts: { fewer: number; level: number; more: number; beyond: number };
}

const median = (xs: (number | null)[]): number | null => {
  const v = xs.filter((x): x is number => x !== null && Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const m = v.length >> 1;
  return v.length % 2 ? (v[m] as number) : ((v[m - 1] as number) + (v[m] as number)) / 2;
};

/** The plain rule's frontier at `share`, read as `selection` reads it. */
function ratioAt(run: SelectionRun, share: number): number | null {
  const frontier = paretoFrontier(
    run.points
      .filter((p) => p.signal === 'margin-ratio')
      .map((p) => ({ avoided: p.inTimeShare, falseAlarms: p.falseAlarms, threshold: p.threshold })),
  );
  return falseAlarmsAtShare(frontier, share);
}

function gainOf(ratio: number | null, falseAlarms: number): number | null {
  return ratio === null || ratio <= 0 ? null : (ratio - falseAlarms) / ratio;
}

function judge(run: SelectionRun, m: Measured, setting: (number | null)[]): Judged {
  const share = run.reference.badDebt > 0 ? m.badDebtInTime / run.reference.badDebt : 0;
  const r = ratioAt(run, share);
  const diff = r === null ? null : m.falseAlarms - r;
  return {
    share,
    falseAlarms: m.falseAlarms,
    ratioFalseAlarms: r,
    gain: gainOf(r, m.falseAlarms),
    verdict:
      diff === null ? 'beyond' : Math.abs(diff) <= LEVEL_WITHIN ? 'level' : diff < 0 ? 'fewer' : 'more',
    setting,
  };
}

/** The model's pooled share of bad debt alerted in time over `runs`. */
function pooledOwnShare(runs: readonly SelectionRun[]): number {
  const total = runs.reduce((a, r) => a + r.reference.badDebt, 0);
  return total > 0 ? runs.reduce((a, r) => a + r.own.point.badDebtInTime, 0) / total : 0;
}

/** The per-group counts of the plain rule's settings of one run, by threshold. */
function ruleCounts(run: SelectionRun): Map<number, readonly GroupCounts[]> {
  const g = run.groups;
  if (!g) throw new Error(`${run.scenario} seed ${run.seed}: no groups (run selection with --by-behaviour)`);
  const out = new Map<number, readonly GroupCounts[]>();
  run.points.forEach((p, k) => {
    if (p.signal === 'margin-ratio')
      out.set(p.threshold, (g.bySetting[k] as { counts: GroupCounts[] }).counts);
  });
  return out;
}

/** Chooses per-group thresholds on `train` pooled; null when no combination reaches the target share. */
function chooseGroups(train: readonly SelectionRun[]): (number | null)[] | null {
  const tables = train.map(ruleCounts);
  const groups = (train[0] as SelectionRun).groups?.names.length ?? 0;
  const thresholds = [...(tables[0] as Map<number, readonly GroupCounts[]>).keys()];
  const pooled = thresholds.map((t) => ({
    threshold: t,
    counts: Array.from({ length: groups }, (_, g) => {
      let falseAlarms = 0;
      let bad = 0;
      for (const tab of tables) {
        const c = tab.get(t)?.[g];
        if (!c) throw new Error(`runs differ in their rule thresholds or groups (threshold ${t})`);
        falseAlarms += c.falseAlarms;
        bad += c.badDebtInTime;
      }
      return { alerted: 0, falseAlarms, badDebtInTime: bad };
    }),
  }));
  const total = train.reduce((a, r) => a + r.reference.badDebt, 0);
  const frontier = groupRuleFrontier(groups, pooled, total);
  const target = pooledOwnShare(train);
  let best: (typeof frontier)[number] | null = null;
  for (const p of frontier)
    if (p.avoided >= target - 1e-12 && (best === null || p.falseAlarms < best.falseAlarms)) best = p;
  return best ? best.thresholds : null;
}

function applyGroups(run: SelectionRun, thresholds: (number | null)[]): Measured {
  const tab = ruleCounts(run);
  let falseAlarms = 0;
  let bad = 0;
  thresholds.forEach((t, g) => {
    if (t === null) return;
    const c = tab.get(t)?.[g];
    if (!c) throw new Error(`${run.scenario} seed ${run.seed}: no rule setting at ${t}`);
    falseAlarms += c.falseAlarms;
    bad += c.badDebtInTime;
  });
  return { falseAlarms, badDebtInTime: bad };
}

function traitOf(run: SelectionRun, name: string): TraitRulePoint[] {
  const t = run.flow?.traits.find((x) => x.name === name);
  if (!t)
    throw new Error(`${run.scenario} seed ${run.seed}: no trait ${name} (run selection with --by-flow)`);
  return t.points;
}

function chooseTrait(train: readonly SelectionRun[], name: string): [number, number] | null {
  const total = train.reduce((a, r) => a + r.reference.badDebt, 0);
  const target = pooledOwnShare(train);
  const pooled = new Map<string, { pair: [number, number]; fa: number; bad: number }>();
  for (const run of train)
    for (const p of traitOf(run, name)) {
      const key = `${p.without}/${p.with}`;
      const e = pooled.get(key) ?? { pair: [p.without, p.with] as [number, number], fa: 0, bad: 0 };
      e.fa += p.falseAlarms;
      e.bad += p.badDebtInTime;
      pooled.set(key, e);
    }
  let best: { pair: [number, number]; fa: number; bad: number } | null = null;
  for (const e of pooled.values()) {
    const share = total > 0 ? e.bad / total : 0;
    if (share < target - 1e-12) continue;
    if (best === null || e.fa < best.fa || (e.fa === best.fa && e.bad > best.bad)) best = e;
  }
  return best ? best.pair : null;
}

function applyTrait(run: SelectionRun, name: string, pair: [number, number]): Measured {
  const p = traitOf(run, name).find((x) => x.without === pair[0] && x.with === pair[1]);
  if (!p) throw new Error(`${run.scenario} seed ${run.seed}: trait ${name} has no pair ${pair.join('/')}`);
  return { falseAlarms: p.falseAlarms, badDebtInTime: p.badDebtInTime };
}

function summarize(
  rule: string,
  runs: readonly SelectionRun[],
  inSample: (run: SelectionRun) => number | null,
  choose: (train: readonly SelectionRun[]) => (number | null)[] | null,
  apply: (run: SelectionRun, setting: (number | null)[]) => Measured,
  outOfSeed: boolean,
): RuleSummary {
  /** choices made on pooled runs, by what they were chosen on */
  const chosen = new Map<string, (number | null)[] | null>();
  const rows: RunRow[] = runs.map((run) => {
    const ownShare = run.own.point.inTimeShare;
    const r = run.own.ratioFalseAlarms;
    const pick = (key: string, train: SelectionRun[]): Judged | null => {
      if (train.length === 0) return null;
      if (!chosen.has(key)) chosen.set(key, choose(train));
      const setting = chosen.get(key) as (number | null)[] | null;
      return setting ? judge(run, apply(run, setting), setting) : null;
    };
    return {
      scenario: run.scenario,
      seed: run.seed,
      own: {
        share: ownShare,
        falseAlarms: run.own.point.falseAlarms,
        ratioFalseAlarms: r,
        gain: gainOf(r, run.own.point.falseAlarms),
      },
      inSample: (() => {
        const o = inSample(run);
        return o === null ? null : gainOf(r, o);
      })(),
      outOfSeed: outOfSeed
        ? pick(
            `seed ${run.scenario}\u0000${run.seed}`,
            runs.filter((x) => x.scenario === run.scenario && x.seed !== run.seed),
          )
        : null,
      // every seed of a day is judged with the one choice made on the other days
      leaveOneDayOut: pick(
        `day ${run.scenario}`,
        runs.filter((x) => x.scenario !== run.scenario),
      ),
    };
  });
  const verdicts = { fewer: 0, level: 0, more: 0, beyond: 0 };
  for (const row of rows) if (row.leaveOneDayOut) verdicts[row.leaveOneDayOut.verdict]++;
  return {
    rule,
    rows,
    median: {
      model: median(rows.map((x) => x.own.gain)),
      inSample: median(rows.map((x) => x.inSample)),
      outOfSeed: outOfSeed ? median(rows.map((x) => x.outOfSeed?.gain ?? null)) : null,
      leaveOneDayOut: median(rows.map((x) => x.leaveOneDayOut?.gain ?? null)),
    },
    verdicts,
  };
}

function groupTotals(runs: readonly SelectionRun[]): GroupTotals[] {
  const names = (runs[0] as SelectionRun).groups?.names ?? [];
  const zero = (): GroupCounts => ({ alerted: 0, falseAlarms: 0, badDebtInTime: 0 });
  const totals: GroupTotals[] = names.map((name) => ({ name, badDebt: 0, own: zero(), ruleAtGate: zero() }));
  const add = (a: GroupCounts, b: GroupCounts) => {
    a.alerted += b.alerted;
    a.falseAlarms += b.falseAlarms;
    a.badDebtInTime += b.badDebtInTime;
  };
  let everyGate = true;
  for (const r of runs) {
    const g = r.groups as NonNullable<SelectionRun['groups']>;
    if (g.names.join() !== names.join())
      throw new Error(`${r.scenario} seed ${r.seed}: other groups than the first run's`);
    const countsAt = (k: number) => (g.bySetting[k] as { counts: GroupCounts[] }).counts;
    const k = r.points.findIndex((p) => p.label === r.own.point.label);
    const kr = r.points.findIndex((p) => p.signal === 'margin-ratio' && p.threshold === r.own.point.gate);
    if (kr < 0) everyGate = false;
    totals.forEach((t, i) => {
      t.badDebt += g.badDebt[i] as number;
      add(t.own, countsAt(k)[i] as GroupCounts);
      if (kr >= 0 && t.ruleAtGate) add(t.ruleAtGate, countsAt(kr)[i] as GroupCounts);
    });
  }
  if (!everyGate) for (const t of totals) t.ruleAtGate = null;
  return totals;
}

/** The group rule's summary (runs with `groups`), and each trait's (runs with `flow`). */
export function summarizeSelections(runs: readonly SelectionRun[]): RuleSummary[] {
  const seen = new Set<string>();
  for (const r of runs) {
    const key = `${r.scenario}\u0000${r.seed}`;
    if (seen.has(key)) throw new Error(`${r.scenario} seed ${r.seed} is given twice`);
    seen.add(key);
  }
  const out: RuleSummary[] = [];
  if (runs.length > 0 && runs.every((r) => r.groups)) {
    const summary = summarize(
      'behaviour',
      runs,
      (run) => run.groups?.oracleAtOwn ?? null,
      chooseGroups,
      applyGroups,
      true,
    );
    out.push({ ...summary, totals: groupTotals(runs) });
  }
  if (runs.length > 0 && runs.every((r) => r.flow))
    for (const t of (runs[0] as SelectionRun).flow?.traits ?? [])
      out.push(
        summarize(
          t.name,
          runs,
          (run) => run.flow?.traits.find((x) => x.name === t.name)?.atOwn ?? null,
          (train) => chooseTrait(train, t.name),
          (run, setting) => applyTrait(run, t.name, setting as [number, number]),
          false,
        ),
      );
  return out;
}

const pct = (x: number | null): string => (x === null ? '-' : `${(x * 100).toFixed(1)}%`);

/** The table on stdout: one line per rule, medians over the runs, and the leave-one-day-out verdicts. */
export function formatSelectionSummary(summaries: readonly RuleSummary[]): string {
  const lines = [
    'false alarms saved against the plain ratio rule at the same share of bad debt alerted in time (median over the runs)',
    '',
    '| rule | runs | the model at its own setting | in sample | out of seed | leave one day out | leave one day out: fewer / level / more / beyond |',
    '|---|---|---|---|---|---|---|',
  ];
  for (const s of summaries)
    lines.push(
      `| ${s.rule} | ${s.rows.length} | ${pct(s.median.model)} | ${pct(s.median.inSample)} | ${pct(s.median.outOfSeed)} | ${pct(s.median.leaveOneDayOut)} | ${s.verdicts.fewer} / ${s.verdicts.level} / ${s.verdicts.more} / ${s.verdicts.beyond} |`,
    );
  for (const s of summaries) {
    if (!s.totals) continue;
    const all = s.totals.reduce((a, t) => a + t.badDebt, 0);
    const share = (x: number) => (all > 0 ? pct(x / all) : '-');
    const cell = (c: GroupCounts | null) =>
      c ? `${c.alerted} / ${c.falseAlarms} / ${share(c.badDebtInTime)}` : '-';
    lines.push(
      '',
      `per ${s.rule} over the ${s.rows.length} runs: share of all their bad debt; alerted / false alarms / share of all their bad debt alerted in time`,
      '',
      `| ${s.rule} | bad debt | the model at its own setting | the rule at the own setting's gate |`,
      '|---|---|---|---|',
      ...s.totals.map((t) => `| ${t.name} | ${share(t.badDebt)} | ${cell(t.own)} | ${cell(t.ruleAtGate)} |`),
    );
  }
  return lines.join('\n');
}
