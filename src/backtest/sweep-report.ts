/**
 * Sweep output: the table and verdict (stdout), `sweep.json`, `sweep.md` and `frontier.svg` (false alarms
 * against bad debt avoided, one line per signal).
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { lineChart, type Series } from '../report/svg-chart.js';
import { BAD_DEBT_CAUSES } from './attribution.js';
import { BacktestInputError } from './policies.js';
import { formatAttribution } from './report.js';
import {
  atSettingsText,
  type PredictiveSetting,
  predictiveLabel,
  type ReusableSweep,
  type SweepPoint,
  type SweepResult,
  type SweepSignal,
} from './sweep.js';

const usd = (v: number) =>
  `${v < 0 ? '-' : ''}$${Math.abs(v).toLocaleString('en-US', { maximumFractionDigits: 0 })}`;
const pct = (v: number | null) => (v === null ? '—' : `${(v * 100).toFixed(1)}%`);

const SIGNALS: SweepSignal[] = ['predictive', 'margin-ratio'];

function header(r: SweepResult): string {
  const overrides = Object.keys(r.policyConfig).length ? JSON.stringify(r.policyConfig) : 'none';
  return `${r.scenario}, ${r.accounts} accounts, seed ${r.seed}, ${r.minutes} simulated minutes; policy-config overrides: ${overrides}
liquidation-only: bad debt ${usd(r.reference.badDebt)}, ${r.reference.liquidations} accounts liquidated, liquidated notional ${usd(r.reference.liquidatedNotional)}${
    r.ratioFrom
      ? `
margin-ratio runs: taken from ${r.ratioFrom} (the same liquidation-only run to the cent; the rule does not use the model), not run again`
      : ''
  }`;
}

function thresholdText(p: SweepPoint): string {
  if (p.signal !== 'predictive')
    return p.exit !== undefined && p.exit !== p.threshold
      ? `equity/MM < ${p.threshold}, armed until >= ${p.exit}`
      : `equity/MM < ${p.threshold}`;
  const gate = p.gate ? `, armed only at equity/MM < ${p.gate}` : '';
  return `pd >= ${p.threshold} (watch ${p.pdWatch})${gate}`;
}

/** The sweep table (Markdown, readable on a terminal), then the verdict. */
export function formatSweepTable(r: SweepResult): string {
  const head = [
    'signal',
    'threshold',
    'bad debt',
    'avoided',
    'false alarms',
    'false-alarm notional',
    'reduced / liq.-only liquidated',
    'reduce-only: accts (never liq.), orders refused',
    'frontier',
    'new bad debt: accts liq.-only liquidated, others',
    ...BAD_DEBT_CAUSES.map((c) => `left: ${c}`),
  ];
  const rows = r.points.map((p) => [
    p.signal,
    thresholdText(p),
    usd(p.badDebt),
    pct(p.avoided),
    String(p.falseAlarms),
    usd(p.falseAlarmNotional),
    `${p.reducedRatio.toFixed(2)}x`,
    p.restricted > 0 ? `${p.restricted} (${p.restrictedFalseAlarms}), ${p.refusedOrders}` : '—',
    p.onFrontier ? '*' : '',
    p.newBadDebt
      ? `${usd(p.newBadDebt.liquidatedThere.badDebt)} (${p.newBadDebt.liquidatedThere.accounts}), ${usd(p.newBadDebt.notLiquidatedThere.badDebt)} (${p.newBadDebt.notLiquidatedThere.accounts})`
      : '—',
    ...BAD_DEBT_CAUSES.map((c) => usd(p.attribution.causes[c].badDebt)),
  ]);
  return [
    header(r),
    '',
    `| ${head.join(' | ')} |`,
    `|${head.map(() => '---').join('|')}|`,
    ...rows.map((c) => `| ${c.join(' | ')} |`),
    '',
    `verdict: ${r.comparison.verdict}`,
    ...(r.atSettings
      ? [`at the policy's own settings (${r.atSettings.label}): ${atSettingsText(r.atSettings)}`]
      : []),
  ].join('\n');
}

export function sweepJson(r: SweepResult): unknown {
  return {
    ...r,
    currency: 'USD',
    points: r.points.map(({ attribution: { bankruptcies: _b, ...attribution }, ...p }) => ({
      ...p,
      attribution,
    })),
  };
}

export function frontierChart(r: SweepResult): string {
  const series: Series[] = [];
  for (const s of SIGNALS) {
    series.push({
      name: `${s} frontier`,
      points: r.frontiers[s].map((p) => ({ x: p.avoided * 100, y: p.falseAlarms })),
    });
  }
  for (const s of SIGNALS) {
    // every threshold, in threshold order (dominated points included); one line per predictive gate and
    // per margin-ratio exit factor
    const groupOf = (p: SweepPoint) =>
      p.signal === 'predictive'
        ? (p.gate ?? 0)
        : Number(((p.exit ?? p.threshold) / p.threshold).toPrecision(6));
    const groups = [...new Set(r.points.filter((p) => p.signal === s).map(groupOf))];
    for (const g of groups) {
      const pts = r.points
        .filter((p) => p.signal === s && groupOf(p) === g && p.avoided !== null)
        .sort((a, b) => a.threshold - b.threshold)
        .map((p) => ({ x: (p.avoided as number) * 100, y: p.falseAlarms }));
      let name = `${s}, all thresholds`;
      if (s === 'predictive' && g !== 0) name = `${s} armed at equity/MM < ${g}, all thresholds`;
      if (s === 'margin-ratio' && g !== 1)
        name = `${s} armed until equity/MM >= ${g} x threshold, all thresholds`;
      series.push({ name, points: pts, dashed: true });
    }
  }
  return lineChart(series, {
    title: `False alarms vs bad debt avoided: ${r.scenario}`,
    xLabel: 'bad debt avoided (% of liquidation-only)',
    yLabel: 'false alarms (accounts)',
  });
}

export async function writeSweepReport(dir: string, r: SweepResult): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'sweep.json'), `${JSON.stringify(sweepJson(r), null, 2)}\n`);
  await writeFile(join(dir, 'frontier.svg'), frontierChart(r));
  const levels = r.comparison.levels.length
    ? `| bad debt avoided | predictive false alarms | margin-ratio false alarms | difference |
|---|---|---|---|
${r.comparison.levels
  .map((l) => `| ${pct(l.avoided)} | ${l.a.toFixed(0)} | ${l.b.toFixed(0)} | ${(l.a - l.b).toFixed(0)} |`)
  .join('\n')}
`
    : '';
  const md = `# Threshold sweep: ${r.scenario}

${formatSweepTable(r)}

- **threshold**: the predictive policy's pdReduce (pdWatch lowered to at most pdReduce / 2, pdHysteresis to at most 15% of pdReduce) and, where given, its margin-ratio gate (\`reduceGateMarginRatio\`: the reduce tier arms only while equity / MM is below it; an armed tier is left on pd alone); or the margin-ratio rule's trigger (pd := 1 when equity / MM is below it) and, where given, its exit level (once armed, pd stays 1 until equity / MM is back at or above it: the stickiness the pd tier's hysteresis and gate give the model). Every other policy setting is the same in every run; each signal's frontier is taken over all its runs (thresholds, gates, exit levels).
- **false alarms**: accounts reduced early that the liquidation-only run never liquidated; **reduced / liq.-only liquidated**: early-reduced notional over the notional liquidation-only force-closed.
- **frontier** (\\*): the point is on its signal's Pareto frontier (no other setting of the same signal avoids at least as much bad debt with fewer false alarms). The verdict interpolates each frontier linearly between its points and compares them over the range of bad debt avoided that both reach.
- **new bad debt**: of the bad debt the run left, what it left on accounts that left none in the liquidation-only run (USD, accounts): those liquidation-only liquidated without bad debt (early reduction kept them in the market until a later bankruptcy), and the others; — for a run reused from a sweep written before this was measured.
- **left: cause**: the bad debt the run left, by cause (late: first REDUCE less than ${r.points[0]?.attribution.lateMinutes ?? 15} minutes before the bankruptcy); see the backtest report's notes.

![Frontier](frontier.svg)

## Frontiers compared

${levels}
${r.comparison.verdict}

## Bad debt left, by cause

${formatAttribution(Object.fromEntries(r.points.map((p) => [p.label, p.attribution])))}
`;
  await writeFile(join(dir, 'sweep.md'), md);
}

const finite = z.number().finite();
const count = z.number().int().nonnegative();
const usdAmount = finite;
const causeTotal = z.looseObject({ badDebt: usdAmount, accounts: count, bankruptcies: count });
const accountsBadDebt = z.looseObject({ accounts: count, badDebt: usdAmount });
const minutesBefore = finite.nullable();
/** a margin-ratio point as `--ratio-from` carries it into the new sweep: every field the reports read */
const ReusedPointSchema = z.looseObject({
  signal: z.literal('margin-ratio'),
  label: z.string(),
  threshold: finite.positive(),
  exit: finite.positive().optional(),
  badDebt: usdAmount,
  avoided: finite.nullable(),
  falseAlarms: count,
  falseAlarmNotional: usdAmount,
  falseAlarmCost: usdAmount,
  reducedNotional: usdAmount,
  reducedRatio: finite,
  liquidations: count,
  saved: count,
  // absent in the sweeps written before 2026-12-07
  newBadDebt: z
    .looseObject({ liquidatedThere: accountsBadDebt, notLiquidatedThere: accountsBadDebt })
    .optional(),
  restricted: count,
  restrictedFalseAlarms: count,
  refusedOrders: count,
  attribution: z.looseObject({
    lateMinutes: finite,
    healthyRatio: finite,
    pdReduce: finite,
    total: usdAmount,
    causes: z.looseObject(
      Object.fromEntries(BAD_DEBT_CAUSES.map((c) => [c, causeTotal])) as Record<
        (typeof BAD_DEBT_CAUSES)[number],
        typeof causeTotal
      >,
    ),
    lateAlertedEarly: causeTotal,
    tooSmallReRisked: causeTotal,
    tooSmallJumped: causeTotal,
    tooSmallReduceDecisions: count,
    tooSmallCappedDecisions: count,
    largest: z.array(
      z.looseObject({
        account: z.string(),
        ts: finite,
        badDebt: usdAmount,
        cause: z.enum(BAD_DEBT_CAUSES),
        firstAlertMinutesBefore: minutesBefore,
        firstReduceMinutesBefore: minutesBefore,
        lastReduceMinutesBefore: minutesBefore,
        reduceDecisions: count,
        plannedReducedNotional: usdAmount,
        lastLookMarginRatio: finite.nullable(),
        lastLookSignal: finite.nullable(),
        mmAtFirstReduce: finite.nullable(),
        lastLookMm: finite.nullable(),
      }),
    ),
  }),
});
/**
 * a `sweep.json` as `--ratio-from` reads it: its margin-ratio points in full (they go into the new sweep as
 * written), the predictive ones only as far as telling them apart
 */
const ReusableSweepSchema = z.object({
  scenario: z.string(),
  accounts: z.number().int().positive(),
  seed: z.number().int(),
  minutes: finite,
  policyConfig: z.record(z.string(), z.unknown()),
  reference: z.object({ badDebt: finite, liquidations: count, liquidatedNotional: finite }),
  points: z.array(z.looseObject({ signal: z.enum(['predictive', 'margin-ratio']), label: z.string() })),
});

/** equal but for the rounding of a double computed the same way (the file holds what the sweep computed) */
const near = (a: number, b: number) => Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(a), Math.abs(b));

/**
 * Read an earlier sweep's `sweep.json` for `--ratio-from` (before anything runs): every field of its
 * margin-ratio points the new sweep's reports use, each point's label against its threshold and exit, its
 * share avoided against its bad debt and the reference's, its reduced ratio against its reduced notional; a
 * clear error names the file and the field.
 */
export async function loadReusableSweep(path: string, flag = '--ratio-from'): Promise<ReusableSweep> {
  const refuse = (field: string, why: string): never => {
    throw new BacktestInputError(`${flag} ${path}: not a usable sweep.json: ${field || '(root)'}: ${why}`);
  };
  let json: unknown;
  try {
    json = JSON.parse(await readFile(path, 'utf8'));
  } catch (err) {
    throw new BacktestInputError(`${flag} ${path}: ${(err as Error).message}`);
  }
  const parsed = ReusableSweepSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new BacktestInputError(
      `${flag} ${path}: not a sweep.json: ${issue.path.join('.') || '(root)'}: ${issue.message}`,
    );
  }
  const sweep = parsed.data;
  const labels = new Set<string>();
  for (const [i, raw] of sweep.points.entries()) {
    if (labels.has(raw.label)) refuse(`points.${i}.label`, `"${raw.label}" is given twice`);
    labels.add(raw.label);
    if (raw.signal !== 'margin-ratio') continue;
    const full = ReusedPointSchema.safeParse(raw);
    if (!full.success) {
      const issue = full.error.issues[0]!;
      refuse(['points', i, ...issue.path].join('.'), issue.message);
      continue;
    }
    const p = full.data;
    const exit = p.exit ?? p.threshold;
    const labelled =
      p.label === `margin-ratio <${p.threshold} exit>=${exit}` ||
      (exit === p.threshold && p.label === `margin-ratio <${p.threshold}`);
    if (!labelled)
      refuse(
        `points.${i}.threshold`,
        `threshold ${p.threshold}${p.exit !== undefined ? ` and exit ${p.exit}` : ''} are not the run its label "${p.label}" names`,
      );
    if (exit < p.threshold)
      refuse(`points.${i}.exit`, `${exit} is below the point's threshold ${p.threshold}`);
    const ref = sweep.reference;
    const avoided = ref.badDebt > 0 ? 1 - p.badDebt / ref.badDebt : null;
    if (avoided === null ? p.avoided !== null : p.avoided === null || !near(p.avoided, avoided))
      refuse(
        `points.${i}.avoided`,
        `${p.avoided} where 1 - badDebt / reference.badDebt (${p.badDebt} / ${ref.badDebt}) is ${avoided}`,
      );
    const reducedRatio = p.reducedNotional / Math.max(1, ref.liquidatedNotional);
    if (!near(p.reducedRatio, reducedRatio))
      refuse(
        `points.${i}.reducedRatio`,
        `${p.reducedRatio} where reducedNotional / reference.liquidatedNotional is ${reducedRatio}`,
      );
  }
  // validated; the file's own object is returned so that its points keep their fields in the order written
  return json as ReusableSweep;
}

const PredictivePointSchema = z.looseObject({
  signal: z.literal('predictive'),
  label: z.string(),
  threshold: finite.positive().max(1),
  gate: finite.nonnegative(),
});

/**
 * The predictive settings an earlier sweep ran (`--predictive-from`), in its order: each point's pdReduce and
 * gate, checked against the label that names them, so that a sweep run again with another model runs the
 * same settings. `source` names the file in errors.
 */
export function predictiveSettingsOf(sweep: ReusableSweep, source: string): PredictiveSetting[] {
  const flag = '--predictive-from';
  const settings: PredictiveSetting[] = [];
  for (const [i, raw] of sweep.points.entries()) {
    if (raw.signal !== 'predictive') continue;
    const parsed = PredictivePointSchema.safeParse(raw);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      throw new BacktestInputError(
        `${flag} ${source}: not a usable sweep.json: ${['points', i, ...issue.path].join('.')}: ${issue.message}`,
      );
    }
    const { threshold: pdReduce, gate, label } = parsed.data;
    if (label !== predictiveLabel(pdReduce, gate))
      throw new BacktestInputError(
        `${flag} ${source}: not a usable sweep.json: points.${i}.threshold: pd ${pdReduce} and gate ${gate} are not the run its label "${label}" names`,
      );
    settings.push({ pdReduce, gate });
  }
  return settings;
}
