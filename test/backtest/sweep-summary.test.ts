import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatSummary, summarizeSweep } from '../../src/cli/commands/sweep-summary.js';
import { DEFAULT_POLICY_CONFIG } from '../../src/margin/index.js';

const point = (signal: string, threshold: number, avoided: number, falseAlarms: number, gate?: number) => ({
  signal,
  label: `${signal} ${threshold}${gate !== undefined ? ` ratio<${gate}` : ''}`,
  threshold,
  ...(gate !== undefined ? { gate } : {}),
  avoided,
  falseAlarms,
  reducedRatio: 1.5,
  extra: 'kept fields the summary does not read are ignored',
});
const sweep = (policyConfig: object, points: object[]) => ({
  scenario: 'luna-2022',
  accounts: 2000,
  seed: 1,
  minutes: 7200,
  policyConfig,
  reference: { badDebt: 1, liquidations: 1, liquidatedNotional: 1 },
  points,
  comparison: { verdict: 'at equal bad debt avoided (...), predictive raises 6 fewer false alarms' },
});
const rule = [
  point('margin-ratio', 3, 0.4, 40),
  point('margin-ratio', 5, 0.6, 100),
  point('margin-ratio', 8, 0.8, 200),
];

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'preempt-sweep-summary-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('preempt sweep-summary', () => {
  it("compares the run at the policy's own settings (recorded, else the file's overrides over the defaults) with the rule", async () => {
    const defaults = join(dir, 'defaults.json');
    // recorded: pd 0.02, gate 5; 0.7 avoided with 160 against the rule's 150 there
    await writeFile(
      defaults,
      JSON.stringify({
        ...sweep({}, [
          point('predictive', 0.02, 0.7, 160, 5),
          point('predictive', 0.02, 0.75, 90, 3),
          ...rule,
        ]),
        ownSettings: { pdReduce: 0.02, gate: 5 },
      }),
    );
    // a file from before the settings were recorded: its overrides (none) over today's defaults
    const { pdReduce: pd, reduceGateMarginRatio: g } = DEFAULT_POLICY_CONFIG;
    const unrecorded = join(dir, 'unrecorded.json');
    await writeFile(unrecorded, JSON.stringify(sweep({}, [point('predictive', pd, 0.75, 90, g), ...rule])));
    const u = await summarizeSweep(unrecorded);
    expect([u.pdReduce, u.gate]).toEqual([pd, g]);
    expect(u.at?.falseAlarms).toBe(90);
    const overridden = join(dir, 'overridden.json');
    await writeFile(
      overridden,
      JSON.stringify(sweep({ reduceGateMarginRatio: 3 }, [point('predictive', 0.02, 0.75, 90, 3), ...rule])),
    );
    const a = await summarizeSweep(defaults);
    expect([a.pdReduce, a.gate]).toEqual([0.02, 5]);
    expect(a.at?.verdict).toBe('more');
    expect(a.at?.ratioFalseAlarms).toBeCloseTo(150, 9);
    const b = await summarizeSweep(overridden);
    expect(b.gate).toBe(3);
    expect(b.at?.verdict).toBe('fewer');
    // --gate picks another run of the same file
    expect((await summarizeSweep(defaults, { gate: 3 })).at?.falseAlarms).toBe(90);
    const text = formatSummary([a, b, await summarizeSweep(defaults, { gate: 8 })]);
    expect(text).toContain('about 150: 10 more **(more)**');
    expect(text).toContain('about 175: 85 fewer');
    expect(text).toContain('no predictive run at pd 0.02, gate 8');
    expect(text).toContain(
      '3 sweeps: fewer false alarms than the rule at the same bad debt avoided in 1 (0 of them beyond',
    );
    expect(text).toContain('more in 1; not compared in 1');
  });

  it('refuses a file that is not a sweep.json, naming the file and the field', async () => {
    const bad = join(dir, 'bad.json');
    await writeFile(
      bad,
      JSON.stringify(sweep({}, [{ ...point('predictive', 0.02, 0.7, 160, 5), falseAlarms: -1 }])),
    );
    await expect(summarizeSweep(bad)).rejects.toThrow(/bad\.json: not a sweep\.json: points\.0\.falseAlarms/);
    const notJson = join(dir, 'not.json');
    await writeFile(notJson, '{');
    await expect(summarizeSweep(notJson)).rejects.toThrow(/not\.json: /);
  });
  it('reads the rule on a narrower grid when asked: only its runs at the given thresholds and exit factors', async () => {
    const file = join(dir, 'grid.json');
    // a sticky run of the rule (armed below 5, disarmed at 7.5) dominates at 0.7 avoided
    const sticky = { ...point('margin-ratio', 5, 0.7, 60), label: 'margin-ratio <5 exit>=7.5', exit: 7.5 };
    await writeFile(
      file,
      JSON.stringify({
        ...sweep({}, [point('predictive', 0.02, 0.7, 120, 5), ...rule, sticky]),
        ownSettings: { pdReduce: 0.02, gate: 5 },
      }),
    );
    const all = await summarizeSweep(file);
    expect(all.at?.verdict).toBe('more');
    expect(all.at?.ratioFalseAlarms).toBeCloseTo(60, 9);
    // without hysteresis only: between (0.6, 100) and (0.8, 200)
    const plain = await summarizeSweep(file, { ratioExitFactors: [1] });
    expect(plain.at?.verdict).toBe('fewer');
    expect(plain.at?.ratioFalseAlarms).toBeCloseTo(150, 9);
    // thresholds 3 and 8 only: between (0.4, 40) and (0.8, 200)
    const wide = await summarizeSweep(file, { ratioThresholds: [3, 8] });
    expect(wide.at?.ratioFalseAlarms).toBeCloseTo(160, 9);
    // factor 1.5 alone keeps the sticky run only, which reaches 0.7 exactly
    const sticky15 = await summarizeSweep(file, { ratioExitFactors: [1.5] });
    expect(sticky15.at?.ratioFalseAlarms).toBeCloseTo(60, 9);
    // the file's own verdict over all its runs is passed through unchanged
    expect(plain.verdict).toBe(all.verdict);
  });
});
