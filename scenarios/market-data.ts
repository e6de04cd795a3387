/**
 * The real market data the scenario scripts (fit-params.ts, fit-funding.ts, build-excerpts.ts) read:
 * ../shared/data/market, or PREEMPT_MARKET_DATA. Not used at run time: scenarios carry their own excerpts.
 */
import { join } from 'node:path';
import { type Bar, loadBars, sliceBars } from '../src/sim/market/bars.js';

export const MARKET_DATA_DIR =
  process.env.PREEMPT_MARKET_DATA ?? join(import.meta.dirname, '../../shared/data/market');

/** the bars of one file of MARKET_DATA_DIR */
export const loadMarketBars = (file: string): Bar[] => loadBars(join(MARKET_DATA_DIR, file)).bars;

/** where the single-venue hourly series end and CCCAGG's begin, epoch ms */
export const T2022 = Date.parse('2022-01-01T00:00:00Z');

/** BTC hourly bars: Bitstamp until 2021, CCCAGG from 2022 */
export const btcHourlyBars = (): Bar[] => [
  ...sliceBars(loadMarketBars('btcusd_bitstamp_1h_2018-05_2022-08.csv'), 0, T2022),
  ...loadMarketBars('btcusd_cccagg_1h.csv'),
];
