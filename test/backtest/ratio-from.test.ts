import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runSweep } from '../../src/backtest/sweep.js';
import { formatSweepTable, loadReusableSweep, writeSweepReport } from '../../src/backtest/sweep-report.js';

/** flash-crash cut to four hours (the same fall in 12 minutes) */
const SHORT_CRASH = join(import.meta.dirname, 'short-crash.json');
const SETTINGS = {
  scenario: SHORT_CRASH,
  accounts: 30,
  seed: 3,
  pdThresholds: [0.1],
  ratioThresholds: [1.5, 3],
  ratioExitFactors: [1, 1.3],
  constantPd: 0.05,
};

let dir: string;
let written: { reference: { badDebt: number }; points: Record<string, unknown>[] } & Record<string, unknown>;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'preempt-ratio-from-'));
  await writeSweepReport(dir, await runSweep(SETTINGS));
  written = JSON.parse(await readFile(join(dir, 'sweep.json'), 'utf8'));
}, 60_000);
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** the written sweep.json with the margin-ratio point labelled `label` changed by `f`; its path */
async function damaged(
  name: string,
  label: string,
  f: (p: Record<string, unknown>) => void,
): Promise<string> {
  const copy = structuredClone(written);
  const p = copy.points.find((q) => q.label === label);
  expect(p, label).toBeDefined();
  f(p as Record<string, unknown>);
  const path = join(dir, `${name}.json`);
  await writeFile(path, JSON.stringify(copy));
  return path;
}

describe('--ratio-from: a damaged sweep.json is refused when it is read, naming the file and the field', () => {
  it('the written sweep loads', async () => {
    const loaded = await loadReusableSweep(join(dir, 'sweep.json'));
    expect(loaded.points.filter((p) => p.signal === 'margin-ratio')).toHaveLength(4);
    for (const p of loaded.points) expect(p.newBadDebt?.liquidatedThere.accounts).toBeGreaterThanOrEqual(0);
    // a sweep written before the new bad debt was measured loads too, its points without it
    const copy = structuredClone(written);
    for (const p of copy.points) delete p.newBadDebt;
    const older = join(dir, 'older.json');
    await writeFile(older, JSON.stringify(copy));
    const old = await loadReusableSweep(older);
    expect(old.points.filter((p) => p.signal === 'margin-ratio')).toHaveLength(4);
    expect(old.points.some((p) => 'newBadDebt' in p)).toBe(false);
    // its rule runs, reused, show no new bad debt; the runs made here do
    const table = formatSweepTable(await runSweep({ ...SETTINGS, ratioFrom: { source: older, sweep: old } }));
    const column = (signal: string) =>
      table
        .split('\n')
        .filter((l) => l.startsWith(`| ${signal} |`))
        .map((l) => l.split(' | ')[9]);
    expect(column('margin-ratio')).toEqual(['—', '—', '—', '—']);
    const made = column('predictive');
    expect(made.length).toBeGreaterThan(0);
    for (const c of made) expect(c).toMatch(/^\$[\d,]+ \(\d+\), \$[\d,]+ \(\d+\)$/);
  }, 60_000);

  it.each([
    [
      'no-causes',
      (p: Record<string, unknown>) => {
        (p.attribution as Record<string, unknown>).causes = {};
      },
      /no-causes\.json: .*points\.\d+\.attribution\.causes\.gap/,
    ],
    [
      'no-ratio',
      (p: Record<string, unknown>) => delete p.reducedRatio,
      /no-ratio\.json: .*points\.\d+\.reducedRatio/,
    ],
    [
      'no-notional',
      (p: Record<string, unknown>) => delete p.falseAlarmNotional,
      /no-notional\.json: .*points\.\d+\.falseAlarmNotional/,
    ],
    [
      'threshold',
      (p: Record<string, unknown>) => {
        p.threshold = 99;
      },
      /threshold\.json: .*points\.\d+\.threshold: threshold 99 .*"margin-ratio <1\.5"/,
    ],
    [
      'exit',
      (p: Record<string, unknown>) => {
        p.exit = 2.5;
      },
      /exit\.json: .*points\.\d+\.threshold: .*exit 2\.5/,
    ],
    [
      'avoided',
      (p: Record<string, unknown>) => {
        p.avoided = (p.avoided as number) + 0.1;
      },
      /avoided\.json: .*points\.\d+\.avoided/,
    ],
    [
      'new-bad-debt',
      (p: Record<string, unknown>) => {
        p.newBadDebt = {
          liquidatedThere: { accounts: -1, badDebt: 0 },
          notLiquidatedThere: { accounts: 0, badDebt: 0 },
        };
      },
      /new-bad-debt\.json: .*points\.\d+\.newBadDebt\.liquidatedThere\.accounts/,
    ],
    [
      'bad-debt',
      (p: Record<string, unknown>) => {
        p.badDebt = (p.badDebt as number) + 100;
      },
      /bad-debt\.json: .*points\.\d+\.avoided/,
    ],
  ])('%s', async (name, f, message) => {
    const path = await damaged(name, 'margin-ratio <1.5', f);
    await expect(loadReusableSweep(path)).rejects.toThrow(message);
  });
});

describe('--ratio-from: a mismatch is found before the runs it would waste', () => {
  it('another scenario: before any run; another reference run: right after it, before the predictive runs', async () => {
    const sweep = await loadReusableSweep(join(dir, 'sweep.json'));
    const started: string[] = [];
    const onProgress = (run: string, minute: number) => {
      if (minute === 1) started.push(run);
    };
    await expect(
      runSweep({
        ...SETTINGS,
        onProgress,
        ratioFrom: { source: 'other.json', sweep: { ...sweep, scenario: 'flash-crash' } },
      }),
    ).rejects.toThrow(/--ratio-from other\.json: scenario flash-crash, not short-crash/);
    expect(started).toEqual([]);

    const tampered = { ...sweep, reference: { ...sweep.reference, badDebt: sweep.reference.badDebt + 1 } };
    await expect(
      runSweep({ ...SETTINGS, onProgress, ratioFrom: { source: 'x.json', sweep: tampered } }),
    ).rejects.toThrow(/--ratio-from x\.json: its liquidation-only run differs/);
    expect(started).toEqual(['liquidation-only']);
  }, 60_000);
});
