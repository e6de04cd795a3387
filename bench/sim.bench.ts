/**
 * Simulator throughput: simulated account-minutes per second for a crash day (flash-crash: 1,440 minutes,
 * a synthetic 18% fall) written as gzip JSON Lines, beside baselines measured in the same run: the price
 * path generation alone (expressed per account-minute: the floor no simulation can beat) and the same
 * simulation with its events discarded (the cost of serialising + gzip). The target is 100,000 accounts
 * over one day in under 10 minutes on 2 cores; the bench measures BENCH_SIM_ACCOUNTS (default 20,000)
 * and extrapolates linearly (labelled as such). PREEMPT_BENCH_SIM_FULL=1 runs the full 100,000: measured
 * once on the shared 2-core machine (load ~4.5, this process got 64% of a core): 3.6 min, 671 k
 * account-minutes/s, 8.4 M events (108 MB gzip), peak heap 766 MB, RSS 0.94 GB. Small runs extrapolate
 * optimistically (about 2.5x here): per-account costs grow with the book and with the machine's load.
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildMarket, JsonlFileSink, loadScenario, simulate } from '../src/sim/index.js';
import { printRatio, timeIt, timeItAsync } from './report.js';

const SCENARIO = 'flash-crash';
const TARGET_ACCOUNTS = 100_000;

export async function run(): Promise<void> {
  const accounts =
    process.env.PREEMPT_BENCH_SIM_FULL === '1'
      ? TARGET_ACCOUNTS
      : Number(process.env.BENCH_SIM_ACCOUNTS ?? 20_000);
  const loaded = loadScenario(SCENARIO);
  let market = buildMarket(loaded, 1, accounts);
  const minutes = market.minutes;
  const pathMs = timeIt(() => {
    market = buildMarket(loaded, 1, accounts);
  });
  const accountMinutes = accounts * minutes;

  const discardMs = await timeItAsync(async () => {
    await simulate(loaded, { accounts, seed: 1, market });
  });

  const dir = mkdtempSync(join(tmpdir(), 'preempt-sim-bench-'));
  const file = join(dir, 'bench.jsonl.gz');
  let peakHeap = 0;
  let events = 0;
  let summaryEvents = 0;
  try {
    const sink = new JsonlFileSink(file);
    const counting = {
      write: (e: Parameters<JsonlFileSink['write']>[0]) => {
        events++;
        sink.write(e);
      },
      flush: () => sink.flush(),
    };
    const fileMs = await timeItAsync(async () => {
      const s = await simulate(loaded, {
        accounts,
        seed: 1,
        market,
        sink: counting,
        onMinute: (m) => {
          if (m % 60 === 0) peakHeap = Math.max(peakHeap, process.memoryUsage().heapUsed);
        },
      });
      summaryEvents = s.events;
      await sink.close();
    });
    const size = statSync(file).size;
    const rate = accountMinutes / (fileMs / 1000);
    console.log(
      `${SCENARIO}: ${accounts} accounts x ${minutes} minutes = ${(accountMinutes / 1e6).toFixed(1)} M account-minutes, ${summaryEvents} events (${(size / 1e6).toFixed(1)} MB gzip)`,
    );
    printRatio(
      'simulate + gzip file (account-minutes/s)',
      rate,
      'price paths alone',
      accountMinutes / (pathMs / 1000),
      'acct-min/s',
    );
    printRatio(
      'simulate + gzip file (account-minutes/s)',
      rate,
      'simulate, events discarded',
      accountMinutes / (discardMs / 1000),
      'acct-min/s',
    );
    console.log(
      `  events/s written ${(events / (fileMs / 1000) / 1e3).toFixed(0)} k; peak heap sampled hourly ${(peakHeap / 1e6).toFixed(0)} MB`,
    );
    const projected = (TARGET_ACCOUNTS * minutes) / rate;
    const label = accounts === TARGET_ACCOUNTS ? 'measured' : `extrapolated linearly from ${accounts}`;
    console.log(
      `  100,000 accounts x 1 day: ${(projected / 60).toFixed(1)} min (${label}) [target: < 10 min]`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
