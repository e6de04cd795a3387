/**
 * Backtest output: the comparison table (stdout), `report.json` (per policy; money in USD) and `report.md`
 * with SVG charts (insurance fund over time, liquidated notional per minute, pd before the crash).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { barChart, lineChart } from '../report/svg-chart.js';
import { BAD_DEBT_CAUSES, type BadDebtAttribution } from './attribution.js';
import type { BacktestResult } from './run.js';

const usd = (v: number) =>
  `${v < 0 ? '-' : ''}$${Math.abs(v).toLocaleString('en-US', { maximumFractionDigits: 0 })}`;
const pct = (v: number | null) => (v === null ? '—' : `${(v * 100).toFixed(1)}%`);

/** One line per early-reducing run: the bad debt it left, by cause (USD, accounts). */
export function formatAttribution(attribution: Record<string, BadDebtAttribution>): string {
  const lines: string[] = [];
  for (const [label, a] of Object.entries(attribution)) {
    const share = (v: number) => (a.total > 0 ? ` ${((v / a.total) * 100).toFixed(0)}%` : '');
    const parts = BAD_DEBT_CAUSES.map((c) => {
      const t = a.causes[c];
      return `${c} ${usd(t.badDebt)}${share(t.badDebt)} (${t.accounts} accts)`;
    });
    const early = a.lateAlertedEarly;
    const notes = [
      early.accounts > 0
        ? `late incl. ${usd(early.badDebt)} (${early.accounts} accts) alerted >= ${a.lateMinutes} min before`
        : '',
      a.tooSmallJumped.accounts > 0
        ? `too-small incl. ${usd(a.tooSmallJumped.badDebt)} (${a.tooSmallJumped.accounts} accts) bankrupt within a minute from equity/MM >= ${a.healthyRatio}`
        : '',
      a.tooSmallReRisked.accounts > 0
        ? `too-small incl. ${usd(a.tooSmallReRisked.badDebt)} (${a.tooSmallReRisked.accounts} accts) that added exposure after their first REDUCE`
        : '',
      a.tooSmallReduceDecisions > 0
        ? `${a.tooSmallCappedDecisions}/${a.tooSmallReduceDecisions} of too-small's REDUCEs capped by interval/depth`
        : '',
    ].filter(Boolean);
    lines.push(
      `- ${label}: bad debt left ${usd(a.total)} = ${parts.join(', ')}${notes.length ? `; ${notes.join('; ')}` : ''}`,
    );
  }
  return lines.join('\n');
}

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
  const restricted = r.policies.filter((p) => p.summary.reduceOnly.restrictedAccounts > 0);
  const reduceOnly = restricted.length
    ? `\nReduce-only restriction while flagged: ${restricted
        .map((p) => {
          const ro = p.summary.reduceOnly;
          return `${p.label ?? p.policy} ${ro.restrictedAccounts} accts restricted (${p.restrictedFalseAlarms} never liquidated by liquidation-only), ${ro.rejectedOrders} risk-increasing orders refused (${usd(ro.rejectedNotional)}), ${ro.cancelledOrders} resting orders cancelled`;
        })
        .join('; ')}`
    : '';
  const capped = r.policies.filter((p) => p.summary.leverageCap.cappedAccounts > 0);
  const leverageCap = capped.length
    ? `\nLeverage cap after early reduction: ${capped
        .map((p) => {
          const lc = p.summary.leverageCap;
          return `${p.label ?? p.policy} ${lc.cappedAccounts} accts capped, ${lc.cutOrders} orders cut or refused (${usd(lc.cutNotional)} beyond the cap), ${lc.cancelledOrders} resting orders cancelled`;
        })
        .join('; ')}`
    : '';
  const early = r.policies.filter((p) => p.policy !== 'liquidation-only');
  const created = early.length
    ? `\nBad debt on accounts that left none in liquidation-only: ${early
        .map((p) => {
          const { liquidatedThere: l, notLiquidatedThere: n } = p.newBadDebt;
          return `${p.label ?? p.policy} ${usd(l.badDebt + n.badDebt)} (${l.accounts + n.accounts} accts; ${usd(l.badDebt)} from ${l.accounts} that liquidation-only liquidated without bad debt)`;
        })
        .join('; ')}`
    : '';
  const causes = Object.keys(r.attribution).length
    ? `\n\nBad debt left, by cause (late: first REDUCE < ${Object.values(r.attribution)[0]?.lateMinutes} min before the bankruptcy):\n${formatAttribution(r.attribution)}`
    : '';
  return `${lines.join('\n')}${note}${reduceOnly}${leverageCap}${created}${causes}`;
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
            reduceOnly: summary.reduceOnly,
            // only when the policy config caps leverage (reports of runs without it stay as they were)
            ...(summary.leverageCap.cappedAccounts > 0 ? { leverageCap: summary.leverageCap } : {}),
          },
        },
      ]),
    ),
    attribution: reportedAttribution(r.attribution),
    preCrashPd: {
      crashTs: r.preCrashPd.crashTs,
      liquidated: summarise(r.preCrashPd.liquidated),
      survived: summarise(r.preCrashPd.survived),
    },
  };
}

/** The attribution as written to the reports: without the list of every bankruptcy. */
export function reportedAttribution(
  attribution: Record<string, BadDebtAttribution>,
): Record<string, Omit<BadDebtAttribution, 'bankruptcies'>> {
  return Object.fromEntries(Object.entries(attribution).map(([k, { bankruptcies: _b, ...a }]) => [k, a]));
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

const LEVERAGE_CAP_NOTE =
  "- **leverage cap after early reduction** (policy config `leverageCapAfterReduce`, `leverageCapHoldMs`): after a REDUCE the venue sizes down or refuses the account's orders that would take its notional above the cap times its equity, and cancels such resting orders, until the hold has passed since its last REDUCE; counted per run (accounts capped, orders cut or refused and the notional beyond the cap, resting orders cancelled).\n";

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
- **reduce-only restriction** (policy config \`reduceOnlyWhileFlagged\`): while an account's signal is in the reduce tier the venue refuses its orders that would increase a position and cancels such resting orders; counted per run (accounts restricted, of which never liquidated by liquidation-only, orders refused, resting orders cancelled).
${r.policies.some((p) => p.summary.leverageCap.cappedAccounts > 0) ? LEVERAGE_CAP_NOTE : ''}- **saved**: accounts liquidated in the liquidation-only run and not in this one.
- **bad debt on accounts that left none in liquidation-only**: what reducing early created rather than avoided, in particular on accounts liquidation-only liquidated without bad debt and an early-reducing run kept in the market until a later bankruptcy (the run's bad debt nets it against what it avoided).
- **bad debt left, by cause** (each bankruptcy of an early-reducing run, with the ADL cost it caused): **gap**, bankrupt within one minute from healthy (at the risk engine's previous look equity/MM >= the watch level and the signal below pdReduce, or no position); **never-alerted**, the signal never reached pdReduce before; **late**, alerted but no REDUCE at least the stated minutes before; **too-small**, reduced in time and still bankrupt (caps, sizing, or the trader added exposure after the first REDUCE), of which some jumped to bankruptcy within a minute from equity/MM above the watch level.

![Bad debt](bad-debt.svg)

![Insurance fund](insurance-fund.svg)

![Liquidations per minute](liquidations-per-minute.svg)

![pd before the crash](pd-before-crash.svg)
`;
  await writeFile(join(dir, 'report.md'), md);
}
