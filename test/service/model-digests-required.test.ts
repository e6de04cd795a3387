import { describe, expect, it } from 'vitest';
import type { PdScorer } from '../../src/model/types.js';
import { configFor } from '../../src/service/config.js';
import { createMetrics } from '../../src/service/metrics.js';
import type { ScorerLoader } from '../../src/service/model/holder.js';
import { modelHolderFor } from '../../src/service/runtime.js';
import { silent, testModelLoader } from './harness.js';

/** The test model, reporting its files verified or not, counting how often a loaded scorer is closed. */
function loaderWith(state: { verified: boolean; closed: number }): ScorerLoader {
  return async (dir) => {
    const s: PdScorer = await testModelLoader(dir);
    return {
      ...s,
      info: { ...s.info, filesVerified: state.verified },
      async close() {
        state.closed++;
        await s.close();
      },
    };
  };
}

describe('PREEMPT_REQUIRE_MODEL_DIGESTS', () => {
  it('is off by default: a model without digests loads, unverified', async () => {
    const state = { verified: false, closed: 0 };
    const holder = modelHolderFor(configFor({}), silent, createMetrics(), loaderWith(state));
    const status = await holder.reload();
    expect(status.mode).toBe('model');
    expect(status.info?.filesVerified).toBe(false);
    await holder.close();
  });

  it('refuses a model without digests (rules only, the scorer closed) and loads a verified one', async () => {
    const state = { verified: false, closed: 0 };
    const config = configFor({ PREEMPT_REQUIRE_MODEL_DIGESTS: 'true' });
    const holder = modelHolderFor(config, silent, createMetrics(), loaderWith(state));
    const refused = await holder.reload();
    expect(refused.mode).toBe('rules-only');
    expect(refused.error).toMatch(/records no sha256 digests.*PREEMPT_REQUIRE_MODEL_DIGESTS/);
    expect(state.closed).toBe(1);
    state.verified = true;
    const loaded = await holder.reload();
    expect(loaded.mode).toBe('model');
    expect(loaded.info?.filesVerified).toBe(true);
    await holder.close();
  });

  it('keeps the verified model when a reload finds one without digests', async () => {
    const state = { verified: true, closed: 0 };
    const config = configFor({ PREEMPT_REQUIRE_MODEL_DIGESTS: 'yes' });
    const holder = modelHolderFor(config, silent, createMetrics(), loaderWith(state));
    expect((await holder.reload()).mode).toBe('model');
    state.verified = false;
    const after = await holder.reload();
    expect(after.mode).toBe('model');
    expect(after.info?.filesVerified).toBe(true);
    expect(after.error).toMatch(/records no sha256 digests/);
    await holder.close();
  });

  it('is refused when it is not a boolean', () => {
    expect(() => configFor({ PREEMPT_REQUIRE_MODEL_DIGESTS: 'maybe' })).toThrow(
      /PREEMPT_REQUIRE_MODEL_DIGESTS/,
    );
  });
});
