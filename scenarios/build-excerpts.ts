/**
 * Writes the small bar and funding excerpts the named scenarios carry in scenarios/data/, each with its
 * provenance (source file, upstream repository and commit, vendor, range) in `#` lines, so that the
 * scenarios run where ../shared/data/market does not exist. Values are copied unchanged; rows are
 * normalised to ascending time, duplicates dropped, volume in base units.
 * Run: `npx tsx scenarios/build-excerpts.ts` (reads PREEMPT_MARKET_DATA or ../shared/data/market).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadBars, sliceBars } from '../src/sim/market/bars.js';
import { loadFundingHistory } from '../src/sim/market/funding-history.js';
import { loadScenario, namedScenarios } from '../src/sim/scenario/load.js';
import { MARKET_DATA_DIR } from './market-data.js';

const dir = MARKET_DATA_DIR;
const out = join(import.meta.dirname, 'data');

const PROVENANCE: Record<string, string> = {
  'btcusd_bitstamp_1h_2018-05_2022-08.csv':
    'darkeclipz/price-data @ b5455a2 : Bitstamp_BTCUSD_1h.csv (CryptoDataDownload export of Bitstamp); vendor terms: CryptoDataDownload/Bitstamp',
  'ethusdt_binance_1h_2017-08_2021-06.csv':
    'andrewsiah/crypto-historical-data @ 6592181 : Binance_ETHUSDT_1h.csv (CryptoDataDownload export of Binance); vendor terms: CryptoDataDownload/Binance',
  'btcusd_cccagg_1h.csv':
    'rarkg/trading-bot @ e55049a : data/BTC_USD_hourly.csv (CryptoCompare CCCAGG); vendor terms: CryptoCompare',
  'ethusd_cccagg_1h.csv':
    'rarkg/trading-bot @ e55049a : data/ETH_USD_hourly.csv (CryptoCompare CCCAGG); vendor terms: CryptoCompare',
  'solusd_cccagg_1h.csv':
    'rarkg/trading-bot @ e55049a : data/SOL_USD_hourly.csv (CryptoCompare CCCAGG); vendor terms: CryptoCompare',
  'fttusd_cccagg_1h.csv':
    'rarkg/trading-bot @ 34fff2c : data/FTT_USD_hourly.csv (CryptoCompare CCCAGG); vendor terms: CryptoCompare',
  'dogeusd_cccagg_1h.csv':
    'rarkg/trading-bot @ 34fff2c : data/DOGE_USD_hourly.csv (CryptoCompare CCCAGG); vendor terms: CryptoCompare',
  'ethusd_10min_03-12-2020.json':
    'BerkeleyBlockchain/stablesims @ 2722d7b : feeds/eth/ (CoinAPI OHLCV, 10 min); vendor terms: CoinAPI',
  'ethusd_10min_05-19-2021.json':
    'BerkeleyBlockchain/stablesims @ 2722d7b : feeds/eth/ (CoinAPI OHLCV, 10 min); vendor terms: CoinAPI',
  'binance_btcusdt_funding_8h_2019-09_2026-02.csv':
    'sky1241/HSBC-algo-genetic @ 4f37a5b : data/funding_rate_BTCUSDT.csv (MIT; Binance BTCUSDT perpetual funding)',
};

const iso = (ms: number): string => new Date(ms).toISOString().replace('.000Z', 'Z');

function excerptBars(name: string, file: string, from: string, to: string, what: string): void {
  const parsed = loadBars(join(dir, file));
  const bars = sliceBars(parsed.bars, Date.parse(from), Date.parse(to));
  const lines = [
    `# preempt scenario excerpt: ${what}`,
    `# source: ../shared/data/market/${file} = ${PROVENANCE[file]}`,
    `# range: ${iso(bars[0]!.ts)} .. ${iso(bars[bars.length - 1]!.ts)} (bar open times), ${bars.length} bars of ${parsed.stepMs / 60_000} min`,
    '# normalised by scenarios/build-excerpts.ts: ascending, duplicates dropped, volume in base units; prices unchanged',
    'datetime,open,high,low,close,volume',
    ...bars.map((b) => `${iso(b.ts)},${b.open},${b.high},${b.low},${b.close},${b.volume}`),
  ];
  writeFileSync(join(out, `${name}.csv`), `${lines.join('\n')}\n`);
  console.log(`${name}.csv: ${bars.length} bars`);
}

function excerptFunding(name: string, from: string, to: string): void {
  const file = 'binance_btcusdt_funding_8h_2019-09_2026-02.csv';
  const pts = loadFundingHistory(join(dir, file)).filter(
    (p) => p.ts >= Date.parse(from) && p.ts <= Date.parse(to),
  );
  const lines = [
    '# preempt scenario excerpt: BTCUSDT perpetual funding rate per 8 h settlement',
    `# source: ../shared/data/market/${file} = ${PROVENANCE[file]}`,
    `# range: ${iso(pts[0]!.ts)} .. ${iso(pts[pts.length - 1]!.ts)}, ${pts.length} settlements (times rounded to the minute)`,
    'timestamp,funding_rate',
    ...pts.map((p) => `${iso(p.ts)},${p.rate}`),
  ];
  writeFileSync(join(out, `${name}.csv`), `${lines.join('\n')}\n`);
  console.log(`${name}.csv: ${pts.length} settlements`);
}

/** the CCCAGG hourly BTC, ETH and SOL bars of the scenarios that extend templates/cccagg-btc-eth-sol.json */
const CCCAGG_BTC_ETH_SOL: Array<[string, string, string]> = [
  ['btc-1h', 'btcusd_cccagg_1h.csv', 'BTC/USD hourly (CCCAGG)'],
  ['eth-1h', 'ethusd_cccagg_1h.csv', 'ETH/USD hourly (CCCAGG)'],
  ['sol-1h', 'solusd_cccagg_1h.csv', 'SOL/USD hourly (CCCAGG)'],
];

/** the Bitstamp BTC and Binance ETH hourly bars of the scenarios that extend templates/bitstamp-btc-binance-eth.json */
const BITSTAMP_BTC_BINANCE_ETH: Array<[string, string, string]> = [
  ['btc-1h', 'btcusd_bitstamp_1h_2018-05_2022-08.csv', 'BTC/USD hourly (Bitstamp)'],
  ['eth-1h', 'ethusdt_binance_1h_2017-08_2021-06.csv', 'ETH/USDT hourly (Binance)'],
];

const windows: Array<{ id: string; from: string; to: string; bars: Array<[string, string, string]> }> = [
  {
    id: 'calm-2023-08',
    from: '2023-08-07T00:00:00Z',
    to: '2023-08-14T00:00:00Z',
    bars: [
      ['btc-1h', 'btcusd_cccagg_1h.csv', 'BTC/USD hourly (CCCAGG)'],
      ['eth-1h', 'ethusd_cccagg_1h.csv', 'ETH/USD hourly (CCCAGG)'],
    ],
  },
  {
    id: 'black-thursday-2020',
    from: '2020-03-12T00:00:00Z',
    to: '2020-03-14T00:00:00Z',
    bars: [
      ...BITSTAMP_BTC_BINANCE_ETH,
      ['eth-10m', 'ethusd_10min_03-12-2020.json', 'ETH/USD 10-minute bars (CoinAPI)'],
    ],
  },
  {
    id: 'may-2021',
    from: '2021-05-18T12:00:00Z',
    to: '2021-05-20T00:00:00Z',
    bars: [
      ...BITSTAMP_BTC_BINANCE_ETH,
      ['eth-10m', 'ethusd_10min_05-19-2021.json', 'ETH/USD 10-minute bars (CoinAPI)'],
    ],
  },
  {
    id: 'ftx-2022',
    from: '2022-11-07T00:00:00Z',
    to: '2022-11-11T00:00:00Z',
    bars: [...CCCAGG_BTC_ETH_SOL, ['ftt-1h', 'fttusd_cccagg_1h.csv', 'FTT/USD hourly (CCCAGG)']],
  },
  {
    id: 'oct-2025',
    from: '2025-10-10T00:00:00Z',
    to: '2025-10-12T00:00:00Z',
    bars: [...CCCAGG_BTC_ETH_SOL, ['doge-1h', 'dogeusd_cccagg_1h.csv', 'DOGE/USD hourly (CCCAGG)']],
  },
];

/** each template's bars: a scenario that extends one carries them over its own window */
const TEMPLATE_BARS: Record<string, Array<[string, string, string]>> = {
  'templates/cccagg-btc-eth-sol.json': CCCAGG_BTC_ETH_SOL,
  'templates/bitstamp-btc-binance-eth.json': BITSTAMP_BTC_BINANCE_ETH,
};
for (const name of namedScenarios()) {
  const { scenario, template } = loadScenario(name);
  const bars = template === undefined ? undefined : TEMPLATE_BARS[template];
  if (bars === undefined) continue;
  windows.push({ id: name, from: scenario.start, to: scenario.end, bars });
}

for (const w of windows) {
  for (const [suffix, file, what] of w.bars) excerptBars(`${w.id}-${suffix}`, file, w.from, w.to, what);
  excerptFunding(`${w.id}-funding`, w.from, w.to);
}
