import { describe, expect, it } from 'vitest';
import {
  compareFrontiers,
  type FrontierPoint,
  interpolateFrontier,
  paretoFrontier,
  pdVariantConfig,
} from '../../src/backtest/sweep.js';

const pt = (avoided: number, falseAlarms: number, threshold = 0): FrontierPoint => ({
  avoided,
  falseAlarms,
  threshold,
});

describe('sweep frontier', () => {
  it('keeps the Pareto set sorted by bad debt avoided and drops dominated points', () => {
    const f = paretoFrontier([
      pt(0.6, 400, 1),
      pt(0.2, 100, 2),
      pt(0.3, 90, 3), // dominates (0.2, 100)
      pt(0.5, 500, 4), // dominated by (0.6, 400)
      pt(-0.1, 5, 5),
      pt(0.3, 95, 6), // dominated by (0.3, 90)
    ]);
    expect(f.map((p) => p.threshold)).toEqual([5, 3, 1]);
    expect(paretoFrontier([])).toEqual([]);
  });

  it('interpolates false alarms piecewise linearly, null outside the frontier', () => {
    const f = [pt(0.1, 10), pt(0.3, 50), pt(0.7, 250)];
    expect(interpolateFrontier(f, 0.1)).toBe(10);
    expect(interpolateFrontier(f, 0.2)).toBeCloseTo(30, 10);
    expect(interpolateFrontier(f, 0.5)).toBeCloseTo(150, 10);
    expect(interpolateFrontier(f, 0.7)).toBe(250);
    expect(interpolateFrontier(f, 0.05)).toBeNull();
    expect(interpolateFrontier(f, 0.71)).toBeNull();
    expect(interpolateFrontier([pt(0.4, 7)], 0.4)).toBe(7);
    expect(interpolateFrontier([], 0.4)).toBeNull();
  });

  it('compares two frontiers over the overlap of bad debt avoided', () => {
    // a: 20 + 100 x over [0.1, 0.7]; b: 40 + 300 x over [0.2, 0.9]: overlap [0.2, 0.7], a - b = -20 - 200 x
    const a = [pt(0.1, 30), pt(0.4, 60), pt(0.7, 90)];
    const b = [pt(0.2, 100), pt(0.5, 190), pt(0.9, 310)];
    const c = compareFrontiers(a, b, 'predictive', 'margin-ratio');
    expect(c.from).toBe(0.2);
    expect(c.to).toBe(0.7);
    expect(c.levels.map((l) => l.avoided)).toEqual([0.2, 0.4, 0.5, 0.7]);
    expect(c.levels[1]).toEqual({ avoided: 0.4, a: 60, b: expect.closeTo(160, 9) });
    // mean of -20 - 200 x over [0.2, 0.7] = -20 - 200 * 0.45 = -110
    expect(c.meanDiff).toBeCloseTo(-110, 9);
    expect(c.minDiff).toBeCloseTo(-160, 9);
    expect(c.maxDiff).toBeCloseTo(-60, 9);
    expect(c.verdict).toBe(
      'at equal bad debt avoided (20.0%..70.0%), predictive raises 110 fewer false alarms than margin-ratio on average (60 to 160 fewer at every level)',
    );
    // mirrored: more
    expect(compareFrontiers(b, a, 'margin-ratio', 'predictive').verdict).toMatch(
      /margin-ratio raises 110 more false alarms than predictive on average \(60 to 160 more/,
    );
  });

  it('says when the frontiers cross or do not overlap', () => {
    const a = [pt(0.2, 10), pt(0.6, 100)];
    const b = [pt(0.2, 50), pt(0.6, 60)];
    const c = compareFrontiers(a, b, 'a', 'b');
    expect(c.minDiff).toBeCloseTo(-40, 9);
    expect(c.maxDiff).toBeCloseTo(40, 9);
    expect(c.verdict).toMatch(/about as many false alarms as b on average \(from 40 fewer to 40 more/);
    const apart = compareFrontiers([pt(0.1, 1), pt(0.2, 2)], [pt(0.5, 1)], 'a', 'b');
    expect(apart.meanDiff).toBeNull();
    expect(apart.verdict).toMatch(/do not overlap: a reaches 10.0%..20.0%, b 50.0%..50.0%/);
    expect(compareFrontiers([], [pt(0.5, 1)], 'a', 'b').verdict).toMatch(/no comparison/);
  });

  it('lowers pdWatch to half the swept pdReduce and pdHysteresis to 15% of it', () => {
    const base = { pdWatch: 0.05, pdHysteresis: 0.03 };
    const v = pdVariantConfig(base, 0.05);
    expect(v).toMatchObject({ pdReduce: 0.05, pdWatch: 0.025 });
    expect(v.pdHysteresis).toBeCloseTo(0.0075, 12);
    expect(pdVariantConfig(base, 0.5)).toEqual({ pdReduce: 0.5, pdWatch: 0.05, pdHysteresis: 0.03 });
    expect(pdVariantConfig({ pdWatch: 0.03, pdHysteresis: 0.01 }, 0.3)).toEqual({
      pdReduce: 0.3,
      pdWatch: 0.03,
      pdHysteresis: 0.01,
    });
    // whatever the threshold, the reduce tier can be left
    for (const t of [0.005, 0.02, 0.1, 0.2, 1]) {
      const c = pdVariantConfig({}, t);
      expect(c.pdReduce - c.pdHysteresis).toBeGreaterThan(0);
    }
  });
});
