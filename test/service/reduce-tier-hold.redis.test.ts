/**
 * The reduce-tier hold (`reduceTierHoldRatio`) through the whole service against a real Redis: an account the pd
 * armed stays restricted while its margin ratio is below the hold ratio although its pd has fallen below the
 * tier's hysteresis, and is lifted once the ratio is back above it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_POLICY_CONFIG } from '../../src/margin/index.js';
import type { WorkerHandle } from '../../src/service/runtime.js';
import { SimulatedVenue } from '../../src/service/venue/simulated.js';
import { connect } from '../helpers/redis.js';
import { deposit, fill, instrument, mark, T0 } from './events-fixtures.js';
import { type RestrictKit, restrictKit } from './restrict-kit.js';

const MIN = 60_000; // ms
const HOLD_RATIO = 12; // equity / MM under test

const redis = connect();
let kit: RestrictKit;
let worker: WorkerHandle | undefined;

beforeAll(async () => {
  kit = await restrictKit(redis, 'svc-tier-hold', {
    reduceTierHoldRatio: HOLD_RATIO,
    reduceTierHoldMs: 3_600_000,
  });
  worker = await kit.startWorker(new SimulatedVenue());
});
afterAll(async () => {
  await worker?.close();
  await kit.close();
  redis.disconnect();
});

describe('reduce-tier hold in the service', () => {
  it('keeps an armed account restricted while its ratio is below the hold ratio, then lifts it', async () => {
    // long 20 @ 100 on 300 USD: equity / MM = 100 - 8,500 / mark (mmr 1%), 15 at 100
    await kit.post([
      instrument(),
      mark(100, T0 + 1),
      deposit('held', 300, T0 + 2),
      fill('held', 'buy', 20, 100, T0 + 3),
      mark(88, T0 + MIN), // ratio 3.4: the test model's pd about 0.38, armed (gate 5)
    ]);
    expect(Object.keys(await kit.jobs())).toEqual(['restrict-held-1']);
    expect(await kit.risk('held')).toMatchObject({ reduceOnly: true });

    // ratio about 9.6: the pd is below the tier's hysteresis, so without the hold the tier would be left
    await kit.post([mark(94, T0 + 2 * MIN)]);
    const mid = await kit.risk('held');
    expect(mid.pd).not.toBeNull();
    expect(mid.pd as number).toBeLessThan(
      DEFAULT_POLICY_CONFIG.pdReduce - DEFAULT_POLICY_CONFIG.pdHysteresis,
    );
    expect(mid.reduceOnly).toBe(true);
    expect(Object.keys(await kit.jobs())).toEqual(['restrict-held-1']);

    // ratio 15, above the hold ratio: lifted, once
    await kit.post([mark(100, T0 + 3 * MIN)]);
    const after = await kit.jobs();
    expect(Object.keys(after).sort()).toEqual(['restrict-held-1', 'restrict-held-2']);
    expect(after['restrict-held-2']).toMatchObject({ account: 'held', reduceOnly: false, version: 2 });
    expect(await kit.risk('held')).toMatchObject({ reduceOnly: false });
  });
});
