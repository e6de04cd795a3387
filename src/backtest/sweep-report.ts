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
import type { ReusableSweep, SweepPoint, SweepResult, SweepSignal } from './sweep.js';

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
/** the parts of a `sweep.json` that `--ratio-from` relies on (the rest of each point is carried as written) */
const ReusableSweepSchema = z.object({
  scenario: z.string(),
  accounts: z.number().int().positive(),
  seed: z.number().int(),
  minutes: finite,
  policyConfig: z.record(z.string(), z.unknown()),
  reference: z.object({ badDebt: finite, liquidations: z.number().int(), liquidatedNotional: finite }),
  points: z.array(
    z.looseObject({
      signal: z.enum(['predictive', 'margin-ratio']),
      label: z.string(),
      threshold: finite,
      badDebt: finite,
      avoided: finite.nullable(),
      falseAlarms: z.number().int(),
      attribution: z.looseObject({ lateMinutes: finite, causes: z.record(z.string(), z.unknown()) }),
    }),
  ),
});

/** Read an earlier sweep's `sweep.json` for `--ratio-from`; a clear error names the file and the field. */
export async function loadReusableSweep(path: string): Promise<ReusableSweep> {
  let json: unknown;
  try {
    json = JSON.parse(await readFile(path, 'utf8'));
  } catch (err) {
    throw new BacktestInputError(`--ratio-from ${path}: ${(err as Error).message}`);
  }
  const parsed = ReusableSweepSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new BacktestInputError(
      `--ratio-from ${path}: not a sweep.json: ${issue.path.join('.') || '(root)'}: ${issue.message}`,
    );
  }
  // validated; the file's own object is returned so that its points keep their fields in the order written
  return json as ReusableSweep;
}
