/**
 * Margin evaluation throughput: the typed-array batch evaluator over 1,000,000 accounts (1 to 5
 * positions each, 5 instruments with 3 tiers) vs the straightforward object-per-account evaluation
 * (`evaluateAccount`, same arithmetic, same data) measured in the same run. The two are checked equal
 * on a sample before timing.
 */

import { emptyBreakdown } from '../src/margin/account-state.js';
import {
  allocateBatchOutput,
  evaluateAccount,
  evaluateBatch,
  type InstrumentSpec,
  instrumentTable,
  type MarginBatch,
  type MarketView,
  type Position,
} from '../src/margin/index.js';
import type { CashBreakdown } from '../src/margin/types.js';
import { Rng } from '../src/sim/random.js';
import { printRatio, timeIt } from './report.js';

const ACCOUNTS = 1_000_000;
const BASELINE_ACCOUNTS = 200_000;
const TIERS = [
  { maxNotional: 50_000, imr: 0.02, mmr: 0.01 },
  { maxNotional: 500_000, imr: 0.05, mmr: 0.025 },
  { maxNotional: null, imr: 0.1, mmr: 0.05 },
];
const SPECS: InstrumentSpec[] = [
  ['BTC-PERP', 'BTC', 0.001, 60_000],
  ['ETH-PERP', 'ETH', 0.01, 3_000],
  ['SOL-PERP', 'SOL', 1, 150],
  ['DOGE-PERP', 'DOGE', 100, 0.15],
  ['XRP-PERP', 'XRP', 10, 0.6],
].map(([symbol, base, contractSize]) => ({
  symbol: symbol as string,
  base: base as string,
  contractSize: contractSize as number,
  tiers: TIERS,
  liquidationFeeRate: 0.005,
  since: 0,
}));
const MARKS = [60_000, 3_000, 150, 0.15, 0.6];

function build(): MarginBatch {
  const rng = new Rng(7, 'margin-bench');
  const counts = new Uint8Array(ACCOUNTS);
  let total = 0;
  for (let a = 0; a < ACCOUNTS; a++) {
    counts[a] = 1 + rng.int(5);
    total += counts[a]!;
  }
  const instruments = instrumentTable(SPECS, (s) => MARKS[SPECS.findIndex((x) => x.symbol === s)]);
  const batch: MarginBatch = {
    instruments,
    accountIds: [],
    cash: new Float64Array(ACCOUNTS),
    posStart: new Uint32Array(ACCOUNTS + 1),
    posInstrument: new Uint32Array(total),
    posQty: new Float64Array(total),
    posEntry: new Float64Array(total),
  };
  let k = 0;
  for (let a = 0; a < ACCOUNTS; a++) {
    batch.posStart[a] = k;
    batch.cash[a] = rng.uniform(100, 200_000);
    const first = rng.int(SPECS.length);
    for (let j = 0; j < counts[a]!; j++) {
      const i = (first + j) % SPECS.length; // one position per instrument
      const spec = SPECS[i]!;
      const notional = Math.exp(rng.uniform(Math.log(100), Math.log(2_000_000)));
      const qty = Math.round(notional / (spec.contractSize * MARKS[i]!)) || 1;
      batch.posInstrument[k] = i;
      batch.posQty[k] = rng.bernoulli(0.5) ? qty : -qty;
      batch.posEntry[k] = MARKS[i]! * rng.uniform(0.9, 1.1);
      k++;
    }
  }
  batch.posStart[ACCOUNTS] = k;
  return batch;
}

interface ObjAccount {
  id: string;
  cash: number;
  breakdown: CashBreakdown;
  positions: Position[];
}

function objects(batch: MarginBatch, n: number): ObjAccount[] {
  const out: ObjAccount[] = [];
  for (let a = 0; a < n; a++) {
    const positions: Position[] = [];
    for (let k = batch.posStart[a]!; k < batch.posStart[a + 1]!; k++) {
      positions.push({
        symbol: SPECS[batch.posInstrument[k]!]!.symbol,
        qty: batch.posQty[k]!,
        avgEntry: batch.posEntry[k]!,
      });
    }
    out.push({ id: `a-${a}`, cash: batch.cash[a]!, breakdown: emptyBreakdown(), positions });
  }
  return out;
}

export async function run(): Promise<void> {
  const batch = build();
  const positions = batch.posStart[ACCOUNTS]!;
  const specBySymbol = new Map(SPECS.map((s, i) => [s.symbol, { spec: s, mark: MARKS[i]! }]));
  const market: MarketView = {
    instrument: (s) => specBySymbol.get(s)?.spec,
    markOf: (s) => specBySymbol.get(s)?.mark,
    dynamicTermOf: () => Number.NaN,
  };
  const objs = objects(batch, BASELINE_ACCOUNTS);
  const out = allocateBatchOutput(ACCOUNTS);

  evaluateBatch(batch, out); // warm-up, and the equality check below
  for (let a = 0; a < 5000; a++) {
    const o = evaluateAccount(objs[a]!, market, { prices: false });
    if (o.equity !== out.equity[a] || o.mm !== out.mm[a] || o.im !== out.im[a])
      throw new Error(`batch and object path disagree on account ${a}`);
  }
  for (const o of objs.slice(0, 20_000)) evaluateAccount(o, market, { prices: false }); // warm-up

  const PASSES = 5;
  let best = Number.POSITIVE_INFINITY;
  for (let p = 0; p < PASSES; p++)
    best = Math.min(
      best,
      timeIt(() => evaluateBatch(batch, out)),
    );
  let liq = 0;
  for (let a = 0; a < ACCOUNTS; a++) liq += out.liquidatable[a]!;

  let baseBest = Number.POSITIVE_INFINITY;
  let sink = 0;
  for (let p = 0; p < 3; p++)
    baseBest = Math.min(
      baseBest,
      timeIt(() => {
        for (const o of objs) sink += evaluateAccount(o, market, { prices: false }).mm;
      }),
    );
  const fullMs = timeIt(() => {
    for (let a = 0; a < 50_000; a++) sink += evaluateAccount(objs[a]!, market).mm;
  });
  if (!Number.isFinite(sink)) throw new Error('non-finite result');

  console.log(
    `${ACCOUNTS.toLocaleString('en')} accounts, ${positions.toLocaleString('en')} positions ` +
      `(${(positions / ACCOUNTS).toFixed(2)}/account), ${liq.toLocaleString('en')} below MM; best of ${PASSES} sweeps: ${best.toFixed(1)} ms`,
  );
  printRatio(
    'margin: batch evaluateBatch accounts/s',
    ACCOUNTS / (best / 1000),
    `object path (${BASELINE_ACCOUNTS / 1000}k accts)`,
    BASELINE_ACCOUNTS / (baseBest / 1000),
    'accounts/s',
    '>= 5 M/s',
  );
  printRatio(
    'margin: object path with liquidation prices',
    50_000 / (fullMs / 1000),
    'object path without prices',
    BASELINE_ACCOUNTS / (baseBest / 1000),
    'accounts/s',
  );
}
