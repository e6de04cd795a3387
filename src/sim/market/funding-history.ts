/**
 * Funding-rate history (Binance BTCUSDT 8-hourly settlements, and scenario excerpts of it): parsing and
 * lookup by settlement time. Settlements are at 00:00, 08:00 and 16:00 UTC; the source's timestamps carry
 * a few ms of jitter, so times are rounded to the minute.
 */
import { readFileSync } from 'node:fs';
import { BarsFormatError, parseTime } from './bars.js';

export interface FundingPoint {
  /** settlement time, epoch ms (rounded to the minute) */
  ts: number;
  /** fraction of notional paid by longs to shorts */
  rate: number;
}

export const FUNDING_INTERVAL_MS = 8 * 3_600_000;

export function parseFundingHistory(text: string, source: string): FundingPoint[] {
  const out: FundingPoint[] = [];
  let header = true;
  for (const line of text.split(/\r?\n/)) {
    if (line.trim() === '' || line.startsWith('#')) continue;
    if (header) {
      if (!/funding_rate/i.test(line))
        throw new BarsFormatError(source, 'expected a "timestamp,funding_rate" header');
      header = false;
      continue;
    }
    const [t, r] = line.split(',');
    const rate = Number(r);
    if (!Number.isFinite(rate)) throw new BarsFormatError(source, `unreadable funding rate "${r}"`);
    out.push({ ts: Math.round(parseTime(t ?? '') / 60_000) * 60_000, rate });
  }
  return out.sort((a, b) => a.ts - b.ts);
}

export function loadFundingHistory(path: string): FundingPoint[] {
  return parseFundingHistory(readFileSync(path, 'utf8'), path);
}

/** The rate settled at `ts` (exact settlement minute), or undefined when the history does not cover it. */
export function fundingAt(history: readonly FundingPoint[], ts: number): number | undefined {
  let lo = 0;
  let hi = history.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const p = history[mid]!;
    if (p.ts === ts) return p.rate;
    if (p.ts < ts) lo = mid + 1;
    else hi = mid - 1;
  }
  return undefined;
}
