import { describe, expect, it } from 'vitest';
import { parseBars, parseTime } from '../../src/sim/market/bars.js';
import { fundingAt, parseFundingHistory } from '../../src/sim/market/funding-history.js';

describe('bar files', () => {
  it('reads a CryptoDataDownload export: URL first line, newest first, epoch seconds, swapped volumes', () => {
    const text = [
      'https://www.CryptoDataDownload.com',
      'unix,date,symbol,open,high,low,close,Volume BTC,Volume USD',
      '1584003600,2020-03-12 09:00:00,BTC/USD,7600,7650,7500,7550,120.5,909775',
      // an older row with the two volume columns swapped (USD in the BTC column)
      '1584000000,2020-03-12 08:00:00,BTC/USD,7700,7710,7590,7600,917840,120.2',
    ].join('\n');
    const { bars, stepMs, duplicates } = parseBars(text, 'x.csv');
    expect(bars.map((b) => b.ts)).toEqual([1584000000000, 1584003600000]);
    expect(stepMs).toBe(3_600_000);
    expect(duplicates).toBe(0);
    expect(bars[0]!.volume).toBeCloseTo(120.2);
    expect(bars[1]!.volume).toBeCloseTo(120.5);
  });

  it('normalises epoch ms vs s in one column and drops the duplicated hours', () => {
    const text = [
      'unix,date,symbol,open,high,low,close,Volume ETH,Volume USDT,tradecount',
      '1598922000000,2020-09-01 01:00:00,ETH/USDT,434,436,430,435,10,4350,5',
      '1598918400000,2020-09-01 00:00:00,ETH/USDT,433.8,435.25,429.03,433.34,61528.17,26584596.41,26239',
      '1598918400.0,2020-09-01 12-AM,ETH/USDT,433.79,435.25,429.03,433.34,61528.18,26584596.42,NULL',
    ].join('\n');
    const { bars, duplicates } = parseBars(text, 'eth.csv');
    expect(bars).toHaveLength(2);
    expect(duplicates).toBe(1);
    expect(bars[0]!.ts).toBe(1598918400000);
  });

  it('reads CoinAPI JSON bars and CCCAGG date-times', () => {
    const json = JSON.stringify([
      {
        time_period_start: '2020-03-12T00:10:00.0000000Z',
        price_open: 2,
        price_high: 3,
        price_low: 1,
        price_close: 2.5,
        volume_traded: 7,
      },
      {
        time_period_start: '2020-03-12T00:00:00.0000000Z',
        price_open: 1,
        price_high: 2,
        price_low: 1,
        price_close: 2,
        volume_traded: 5,
      },
    ]);
    const a = parseBars(json, 'a.json');
    expect(a.stepMs).toBe(600_000);
    expect(a.bars[0]!.ts).toBe(Date.parse('2020-03-12T00:00:00Z'));
    expect(parseTime('2022-01-01 01:00:00+00:00')).toBe(Date.parse('2022-01-01T01:00:00Z'));
  });

  it('rejects a file without the columns it needs, naming it', () => {
    expect(() => parseBars('time,price\n1,2\n', 'bad.csv')).toThrow(/bad.csv: header has no "open" column/);
    expect(() => parseBars('unix,open,high,low,close\n1,1,1,-1,1\n', 'neg.csv')).toThrow(
      /line 2: prices must be finite and > 0/,
    );
  });

  it('finds funding settlements with the source millisecond jitter rounded away', () => {
    const h = parseFundingHistory(
      'timestamp,funding_rate\n2026-02-07 08:00:00.000,-8.326e-05\n2026-02-07 16:00:00.010,-2.907e-05\n',
      'f',
    );
    expect(fundingAt(h, Date.parse('2026-02-07T16:00:00Z'))).toBe(-2.907e-5);
    expect(fundingAt(h, Date.parse('2026-02-08T00:00:00Z'))).toBeUndefined();
  });
});
