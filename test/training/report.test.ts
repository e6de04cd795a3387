import { describe, expect, it } from 'vitest';
import { stageFittedOn } from '../../training/report.js';

describe('model report', () => {
  it('says where the second stage was fitted: the calibration split, other days, or out of day', () => {
    expect(stageFittedOn({ training: {} })).toBe(
      'the stage fitted on the calibration split (traders never trained on)',
    );
    expect(stageFittedOn({ training: { calibrateOn: ['a.jsonl', 'b.jsonl'] } })).toMatch(
      /fitted on other histories, never trained on \(`--calibrate-on`: 2\)/,
    );
    // eight training histories: each scored by a network trained on the other seven
    const folds = Array.from({ length: 8 }, (_, i) => ({ heldOut: `${i}.jsonl` }));
    const text = stageFittedOn({ training: { stageCrossFit: { rows: 10, positives: 1, folds } } });
    expect(text).toMatch(/out of day \(`--stage-cross-fit`\)/);
    expect(text).toMatch(/trained on the other 7$/);
  });
});
