import { afterAll, describe, expect, it } from 'vitest';
import type { MarketInput } from '../../src/service/queue/job.js';
import { keyspace } from '../../src/service/state/keys.js';
import { type MarketRecord, readMarket, writeMarket } from '../../src/service/state/market.js';
import { connect, deletePrefix, freshPrefix } from '../helpers/redis.js';

const redis = connect();
const prefixes: string[] = [];
afterAll(async () => {
  for (const p of prefixes) await deletePrefix(redis, p);
  redis.disconnect();
});

function fresh() {
  const prefix = freshPrefix('market');
  prefixes.push(prefix);
  return keyspace(prefix);
}

/** a market input at mark `mark` (USD) */
const input = (mark: number): MarketInput => ({ mark, contractSize: 1, liquidationFeeRate: 0.005 });
const rec = (mark: number, ts: number): MarketRecord => ({ input: input(mark), ts });

describe('the market inputs workers execute against', () => {
  it('never go back to an older mark: a lagging shard or a previous owner writes older records', async () => {
    const keys = fresh();
    await writeMarket(redis, keys, new Map([['BTC-PERP', rec(100, 2_000)]]));
    // an evaluator behind the first (older event time): not applied
    await writeMarket(redis, keys, new Map([['BTC-PERP', rec(90, 1_000)]]));
    expect((await readMarket(redis, keys, ['BTC-PERP']))['BTC-PERP']).toEqual(rec(100, 2_000));
    // as new or newer: applied, symbol by symbol in one write
    await writeMarket(
      redis,
      keys,
      new Map([
        ['BTC-PERP', rec(101, 2_000)],
        ['ETH-PERP', rec(10, 500)],
      ]),
    );
    await writeMarket(
      redis,
      keys,
      new Map([
        ['BTC-PERP', rec(95, 1_500)],
        ['ETH-PERP', rec(11, 3_000)],
      ]),
    );
    expect(await readMarket(redis, keys, ['BTC-PERP', 'ETH-PERP'])).toEqual({
      'BTC-PERP': rec(101, 2_000),
      'ETH-PERP': rec(11, 3_000),
    });
  });

  it('replaces a stored record it cannot read', async () => {
    const keys = fresh();
    await redis.hset(keys.market, 'BTC-PERP', 'not json');
    await writeMarket(redis, keys, new Map([['BTC-PERP', rec(100, 1)]]));
    expect((await readMarket(redis, keys, ['BTC-PERP']))['BTC-PERP']).toEqual(rec(100, 1));
  });
});
