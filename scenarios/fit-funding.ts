/**
 * Fits the funding premium model (`funding.baseRate`, `premiumK`, `clamp` in src/sim/scenario/schema.ts: the rate a
 * scenario settles where no funding history covers it, base + k * (8 h log return), clamped) to Binance BTCUSDT's
 * settlements against BTC's 8 h log return to each settlement, and prints the fit (documented in
 * scenarios/README.md). Needs ../shared/data/market (or PREEMPT_MARKET_DATA); run: `npx tsx scenarios/fit-funding.ts`.
 */
import { join } from 'node:path';
import { FUNDING_INTERVAL_MS, loadFundingHistory } from '../src/sim/market/funding-history.js';
import { correlationMatrix, mean, variance } from '../src/sim/paths/stats.js';
import { btcHourlyBars, MARKET_DATA_DIR } from './market-data.js';

const HOUR_MS = 3_600_000;
// BTC hourly closes as fit-params.ts takes them
const closeAt = new Map(btcHourlyBars().map((b) => [b.ts, b.close]));
const funding = loadFundingHistory(join(MARKET_DATA_DIR, 'binance_btcusdt_funding_8h_2019-09_2026-02.csv'));

// rate settled at t against ln(close at t / close 8 h before), both hours on the hourly grid
const x: number[] = [];
const y: number[] = [];
for (const p of funding) {
  const t = Math.floor(p.ts / HOUR_MS) * HOUR_MS;
  const now = closeAt.get(t);
  const before = closeAt.get(t - FUNDING_INTERVAL_MS);
  if (now === undefined || before === undefined) continue;
  x.push(Math.log(now / before));
  y.push(p.rate);
}
const n = x.length;
const r = correlationMatrix([x, y])[0]![1]!;
// least-squares slope cov(x, y) / var(x) = r * sd(y) / sd(x)
const k = r * Math.sqrt(variance(y) / variance(x));
const sorted = [...y].sort((a, b) => a - b);
const q = (p: number) => sorted[Math.min(n - 1, Math.floor(p * n))]!;
console.log(`settlements matched to BTC closes: ${n} of ${funding.length}`);
console.log(`rate: median ${q(0.5)}, 1%..99% ${q(0.01)}..${q(0.99)}, min ${sorted[0]}, max ${sorted[n - 1]}`);
console.log(`correlation with the 8 h log return: ${r.toFixed(4)}`);
console.log(
  `least squares: rate = ${(mean(y) - k * mean(x)).toPrecision(3)} + ${k.toPrecision(3)} * (8 h log return)`,
);
for (const [lo, hi] of [
  [-1, -0.08],
  [-0.08, -0.02],
  [-0.02, 0.02],
  [0.02, 0.08],
  [0.08, 1],
] as const) {
  const ys = y.filter((_, i) => x[i]! >= lo && x[i]! < hi).sort((a, b) => a - b);
  if (ys.length === 0) continue;
  console.log(
    `  8 h return in [${lo}, ${hi}): ${ys.length} settlements, median ${ys[ys.length >> 1]}, min ${ys[0]}, max ${ys[ys.length - 1]}`,
  );
}
