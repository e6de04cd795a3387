/**
 * OHLCV bars from the real-data files (../shared/data/market) and from the scenario excerpts: one parser
 * that normalises the vendors' quirks into ascending, de-duplicated bars keyed by open time in epoch ms.
 *
 * Quirks handled (see the data README): a URL as the first line (CryptoDataDownload), rows newest first,
 * epoch seconds vs milliseconds in the same column (Binance ETH mixes `1598918400000` and `1598918400.0`),
 * the same hour twice (de-duplicated on the normalised time, first occurrence kept), ISO or
 * `YYYY-MM-DD HH:MM:SS+00:00` date-times, CoinAPI JSON arrays (`time_period_start`, `price_open`, ...),
 * Bitstamp rows whose base and quote volume columns are swapped, and `#` provenance comment lines.
 */
import { readFileSync } from 'node:fs';

export interface Bar {
  /** bar open time, epoch ms UTC */
  ts: number;
  /** USD */
  open: number;
  high: number;
  low: number;
  close: number;
  /** base units traded in the bar (0 when the source has none) */
  volume: number;
}

export class BarsFormatError extends Error {
  readonly code = 'BARS_FORMAT';
  constructor(
    readonly source: string,
    message: string,
  ) {
    super(`${source}: ${message}`);
    this.name = 'BarsFormatError';
  }
}

export interface ParsedBars {
  bars: Bar[];
  /** bar step, ms (the most common gap between consecutive bars) */
  stepMs: number;
  /** rows dropped because their time was already present */
  duplicates: number;
}

/** Epoch seconds or milliseconds (numeric), or a UTC date-time string, to epoch ms. */
export function parseTime(raw: string): number {
  const t = raw.trim();
  if (/^\d+(\.\d+)?$/.test(t)) {
    const v = Number(t);
    return Math.round(v < 1e11 ? v * 1000 : v);
  }
  let iso = t.replace(' ', 'T');
  if (!/(Z|[+-]\d\d:?\d\d)$/.test(iso)) iso += 'Z';
  // CoinAPI writes 7 fractional digits, which Date.parse rejects
  iso = iso.replace(/(\.\d{3})\d+/, '$1');
  const ms = Date.parse(iso);
  if (!Number.isFinite(ms)) throw new Error(`unreadable time "${raw}"`);
  return ms;
}

function splitCsv(line: string): string[] {
  return line.split(',').map((c) => c.trim());
}

const TIME_COLUMNS = ['unix', 'ts', 'timestamp', 'datetime', 'date', 'time'];

function parseCsv(text: string, source: string): Bar[] {
  const lines = text.split(/\r?\n/);
  let header: string[] | undefined;
  const bars: Bar[] = [];
  let timeCol = -1;
  const col: Record<string, number> = {};
  let volBase = -1;
  let volQuote = -1;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] ?? '';
    if (line.trim() === '' || line.startsWith('#') || /^https?:\/\//i.test(line)) continue;
    if (!header) {
      header = splitCsv(line).map((h) => h.toLowerCase());
      timeCol = TIME_COLUMNS.map((n) => header?.indexOf(n) ?? -1).find((j) => j >= 0) ?? -1;
      for (const k of ['open', 'high', 'low', 'close']) {
        const j = header.indexOf(k);
        if (j < 0) throw new BarsFormatError(source, `header has no "${k}" column`);
        col[k] = j;
      }
      if (timeCol < 0) throw new BarsFormatError(source, 'header has no time column (unix, datetime, ...)');
      volBase = header.findIndex((h) => h === 'volume' || (h.startsWith('volume ') && !/usd/.test(h)));
      volQuote = header.findIndex((h) => /^volume usd/.test(h));
      continue;
    }
    const cells = splitCsv(line);
    const num = (k: string): number => Number(cells[col[k] ?? -1]);
    let ts: number;
    try {
      ts = parseTime(cells[timeCol] ?? '');
    } catch (e) {
      throw new BarsFormatError(source, `line ${i + 1}: ${(e as Error).message}`);
    }
    const bar: Bar = {
      ts,
      open: num('open'),
      high: num('high'),
      low: num('low'),
      close: num('close'),
      volume: 0,
    };
    if (![bar.open, bar.high, bar.low, bar.close].every((v) => Number.isFinite(v) && v > 0))
      throw new BarsFormatError(source, `line ${i + 1}: prices must be finite and > 0`);
    if (volBase >= 0) {
      let vb = Number(cells[volBase]);
      const vq = volQuote >= 0 ? Number(cells[volQuote]) : Number.NaN;
      // Bitstamp's older rows carry USD volume in the BTC column: the quote/base ratio is then ~1/close
      if (Number.isFinite(vq) && vb > 0 && vq > 0 && vq / vb < Math.sqrt(bar.close) / bar.close) vb = vq;
      bar.volume = Number.isFinite(vb) && vb > 0 ? vb : 0;
    }
    bars.push(bar);
  }
  if (!header) throw new BarsFormatError(source, 'no header line');
  return bars;
}

interface CoinApiRow {
  time_period_start: string;
  price_open: number;
  price_high: number;
  price_low: number;
  price_close: number;
  volume_traded?: number;
}

function parseCoinApi(text: string, source: string): Bar[] {
  const rows = JSON.parse(text) as unknown;
  if (!Array.isArray(rows)) throw new BarsFormatError(source, 'JSON bars must be an array');
  return rows.map((r: CoinApiRow, i) => {
    if (typeof r?.time_period_start !== 'string')
      throw new BarsFormatError(source, `row ${i}: missing time_period_start`);
    return {
      ts: parseTime(r.time_period_start),
      open: r.price_open,
      high: r.price_high,
      low: r.price_low,
      close: r.price_close,
      volume: r.volume_traded ?? 0,
    };
  });
}

/** Normalise: ascending by time, duplicates removed, high/low widened to contain open and close. */
export function normaliseBars(raw: Bar[]): ParsedBars {
  const sorted = [...raw].sort((a, b) => a.ts - b.ts);
  const bars: Bar[] = [];
  let duplicates = 0;
  for (const b of sorted) {
    if (bars.length > 0 && bars[bars.length - 1]?.ts === b.ts) {
      duplicates++;
      continue;
    }
    bars.push({ ...b, high: Math.max(b.high, b.open, b.close), low: Math.min(b.low, b.open, b.close) });
  }
  const gaps = new Map<number, number>();
  for (let i = 1; i < Math.min(bars.length, 200); i++) {
    const g = (bars[i]?.ts ?? 0) - (bars[i - 1]?.ts ?? 0);
    gaps.set(g, (gaps.get(g) ?? 0) + 1);
  }
  let stepMs = 3_600_000;
  let best = 0;
  for (const [g, n] of gaps)
    if (n > best) {
      best = n;
      stepMs = g;
    }
  return { bars, stepMs, duplicates };
}

export function parseBars(text: string, source: string): ParsedBars {
  const trimmed = text.trimStart();
  const raw = trimmed.startsWith('[') ? parseCoinApi(trimmed, source) : parseCsv(text, source);
  if (raw.length === 0) throw new BarsFormatError(source, 'no bars');
  return normaliseBars(raw);
}

export function loadBars(path: string): ParsedBars {
  return parseBars(readFileSync(path, 'utf8'), path);
}

/** Bars whose open time lies in [fromMs, toMs). */
export function sliceBars(bars: readonly Bar[], fromMs: number, toMs: number): Bar[] {
  return bars.filter((b) => b.ts >= fromMs && b.ts < toMs);
}
