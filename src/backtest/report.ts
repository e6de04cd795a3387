/**
 * Backtest output: the comparison table (stdout), `report.json` (per policy; money in USD) and `report.md`
 * with SVG charts (insurance fund over time, liquidated notional per minute, pd before the crash).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { barChart, lineChart } from '../report/svg-chart.js';
import type { BacktestResult } from './run.js';

const usd = (v: number) =>
  `${v < 0 ? '-' : ''}$${Math.abs(v).toLocaleString('en-US', { maximumFractionDigits: 0 })}`;
const pct = (v: number | null) => (v === null ? '—' : `${(v * 100).toFixed(1)}%`);

/** A Markdown table (also readable on a terminal). */
export function formatTable(r: BacktestResult): string {
  const ref = r.policies.find((p) => p.policy === 'liquidation-only');
  const head = [
    'policy',
    'bad debt',
    'avoided',
    'insurance drawn',
    'ADL+socialised',
    'liquidated accts',
    'liquidated notional',
    'reduced accts',
    'reduced notional',
    'false alarms',
    'false-alarm cost',
    'saved',
    'peak liq/min',
    'ADL events',
  ];
  const rows = r.policies.map((p) => [
    p.policy,
    usd(p.badDebt),
    pct(p.badDebtAvoided),
    usd(p.insuranceDrawn),
    usd(p.beyondInsurance),
    String(p.liquidations),
    usd(p.liquidatedNotional),
    String(p.reductions),
    usd(p.reducedNotional),
    String(p.falseAlarms),
    usd(p.falseAlarmCost),
    String(p.saved),
    usd(p.peakLiquidationPerMinute),
    String(p.adlEvents),
  ]);
  const lines = [
    `| ${head.join(' | ')} |`,
    `|${head.map(() => '---').join('|')}|`,
    ...rows.map((c) => `| ${c.join(' | ')} |`),
  ];
  const note = ref
    ? `\n${r.scenario}, ${r.accounts} accounts, seed ${r.seed}, ${r.minutes} simulated minutes; reduced notional vs liquidation-only liquidated notional: ${r.policies
        .filter((p) => p.policy !== 'liquidation-only')
        .map((p) => `${p.policy} ${(p.reducedNotional / Math.max(1, ref.liquidatedNotional)).toFixed(2)}x`)
        .join(', ')}`
    : '';
  return `${lines.join('\n')}${note}`;
}

export function reportJson(r: BacktestResult): unknown {
  return {
    scenario: r.scenario,
    accounts: r.accounts,
    seed: r.seed,
    minutes: r.minutes,
    currency: 'USD',
    policies: Object.fromEntries(
      r.policies.map(({ summary, ...p }) => [
        p.policy,
        {
          ...p,
          simulator: {
            badDebt: summary.badDebt,
            liquidatedAccounts: summary.liquidatedAccounts,
            events: summary.events,
          },
        },
      ]),
    ),
    preCrashPd: {
      crashTs: r.preCrashPd.crashTs,
      liquidated: summarise(r.preCrashPd.liquidated),
      survived: summarise(r.preCrashPd.survived),
    },
  };
}

function summarise(values: number[]) {
  if (values.length === 0) return { n: 0 };
  const s = [...values].sort((a, b) => a - b);
  const q = (f: number) => s[Math.min(s.length - 1, Math.floor(f * s.length))] as number;
  return {
    n: s.length,
    p10: q(0.1),
    median: q(0.5),
    p90: q(0.9),
    mean: s.reduce((a, b) => a + b, 0) / s.length,
  };
}

function histogram(values: number[], bins = 20): { x: number; y: number }[] {
  const counts = new Array<number>(bins).fill(0);
  for (const v of values) {
    const b = Math.min(bins - 1, Math.max(0, Math.floor(v * bins)));
    counts[b] = (counts[b] as number) + 1;
  }
  const n = Math.max(1, values.length);
  return counts.map((c, i) => ({ x: (i + 0.5) / bins, y: c / n }));
}

export async function writeBacktestReport(dir: string, r: BacktestResult): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'report.json'), `${JSON.stringify(reportJson(r), null, 2)}\n`);
  const hours = (ts: number) => (ts - (r.insuranceFund['liquidation-only']?.[0]?.[0] ?? ts)) / 3_600_000;
  await writeFile(
    join(dir, 'insurance-fund.svg'),
    lineChart(
      Object.entries(r.insuranceFund).map(([name, path]) => ({
        name,
        points: path.map(([t, v]) => ({ x: hours(t), y: v })),
      })),
      { title: 'Insurance fund', xLabel: 'hours since start', yLabel: 'USD' },
    ),
  );
  await writeFile(
    join(dir, 'liquidations-per-minute.svg'),
    lineChart(
      Object.entries(r.liquidationsPerMinute).map(([name, series]) => ({
        name,
        points: series.map(([t, v]) => ({ x: hours(t), y: v })),
      })),
      { title: 'Liquidated notional per minute', xLabel: 'hours since start', yLabel: 'USD per minute' },
    ),
  );
  await writeFile(
    join(dir, 'pd-before-crash.svg'),
    lineChart(
      [
        { name: 'accounts liquidated (liquidation-only run)', points: histogram(r.preCrashPd.liquidated) },
        { name: 'accounts not liquidated', points: histogram(r.preCrashPd.survived) },
      ],
      {
        title: 'pd in the hour before the peak liquidation minute',
        xLabel: 'pd',
        yLabel: 'share of scored rows',
        xRange: [0, 1],
      },
    ),
  );
  await writeFile(
    join(dir, 'bad-debt.svg'),
    barChart(
      r.policies.map((p) => ({ label: p.policy, value: p.badDebt })),
      { title: 'Bad debt by policy (USD)', xLabel: 'USD' },
    ),
  );
  const md = `# Backtest: ${r.scenario}

${r.accounts} accounts, seed ${r.seed}, ${r.minutes} simulated minutes. Money in USD.

${formatTable(r)}

- **bad debt**: bankruptcy deficits (insurance fund drawn + socialised loss) plus what ADL cost the deleveraged accounts against the mark; **avoided**: share of the liquidation-only bad debt.
- **false alarms**: accounts reduced early that the liquidation-only run never liquidated; **false-alarm cost**: fees and slippage those reductions cost them.
- **saved**: accounts liquidated in the liquidation-only run and not in this one.

![Bad debt](bad-debt.svg)

![Insurance fund](insurance-fund.svg)

![Liquidations per minute](liquidations-per-minute.svg)

![pd before the crash](pd-before-crash.svg)
`;
  await writeFile(join(dir, 'report.md'), md);
}
