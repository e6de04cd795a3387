import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  assertSchemaHash,
  F,
  FEATURE_COUNT,
  FEATURE_NAMES,
  FEATURE_NEUTRAL,
  FEATURE_PARAMS,
  FEATURE_SCHEMA_HASH,
  FEATURE_SCHEMA_VERSION,
  FEATURES,
  FeatureSchemaMismatchError,
  featureSchemaInfo,
} from '../../src/features/schema.js';

describe('feature schema', () => {
  it('has unique names, a unit and a meaning for each, finite neutral values, and flags that are 0/1', () => {
    expect(new Set(FEATURE_NAMES).size).toBe(FEATURE_COUNT);
    for (const f of FEATURES) {
      expect(f.name).toMatch(/^[a-z][a-z0-9_]*$/);
      expect(f.unit.length).toBeGreaterThan(0);
      expect(f.meaning.length).toBeGreaterThan(10);
      expect(Number.isFinite(f.neutral)).toBe(true);
      if (f.group === 'flag') expect([0, 1]).toContain(f.neutral);
    }
    FEATURE_NAMES.forEach((n, i) => {
      expect(F[n]).toBe(i);
    });
    expect(FEATURE_NEUTRAL.length).toBe(FEATURE_COUNT);
  });

  it('hashes version, params and the ordered name/unit/neutral list with sha256', () => {
    const expected = createHash('sha256')
      .update(
        JSON.stringify({
          version: FEATURE_SCHEMA_VERSION,
          params: FEATURE_PARAMS,
          features: FEATURES.map((f) => [f.name, f.unit, f.neutral]),
        }),
      )
      .digest('hex');
    expect(FEATURE_SCHEMA_HASH).toBe(expected);
    expect(FEATURE_SCHEMA_HASH).toMatch(/^[0-9a-f]{64}$/);
    const info = featureSchemaInfo();
    expect(info.hash).toBe(FEATURE_SCHEMA_HASH);
    expect(info.names).toEqual(FEATURE_NAMES);
    // a reordering changes the hash
    const swapped = FEATURES.map((f) => [f.name, f.unit, f.neutral]);
    [swapped[0], swapped[1]] = [swapped[1]!, swapped[0]!];
    const other = createHash('sha256')
      .update(JSON.stringify({ version: FEATURE_SCHEMA_VERSION, params: FEATURE_PARAMS, features: swapped }))
      .digest('hex');
    expect(other).not.toBe(FEATURE_SCHEMA_HASH);
  });

  it('accepts its own hash and refuses any other with FeatureSchemaMismatchError', () => {
    expect(() => assertSchemaHash(FEATURE_SCHEMA_HASH)).not.toThrow();
    const wrong = `${FEATURE_SCHEMA_HASH.slice(0, 63)}${FEATURE_SCHEMA_HASH.endsWith('0') ? '1' : '0'}`;
    let caught: unknown;
    try {
      assertSchemaHash(wrong);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(FeatureSchemaMismatchError);
    const err = caught as FeatureSchemaMismatchError;
    expect(err.code).toBe('FEATURE_SCHEMA_MISMATCH');
    expect(err.expected).toBe(wrong);
    expect(err.actual).toBe(FEATURE_SCHEMA_HASH);
    expect(err.message).toMatch(/retrain/);
    expect(() => assertSchemaHash('')).toThrow(FeatureSchemaMismatchError);
  });

  it('is documented in src/features/README.md, in order, with units, neutral values and the current hash', () => {
    const readme = readFileSync(new URL('../../src/features/README.md', import.meta.url), 'utf8');
    // table rows: | # | `name` | unit | meaning | neutral |  (cells padded; \| is a literal pipe)
    const rows = readme
      .split('\n')
      .filter((l) => /^\|\s*\d+\s*\|\s*`/.test(l))
      .map((l) =>
        l
          .replaceAll('\\|', '\u0000')
          .split('|')
          .slice(1, -1)
          .map((c) => c.trim().replaceAll('\u0000', '|')),
      );
    expect(rows.map((c) => c[1]!.replaceAll('`', ''))).toEqual(FEATURE_NAMES);
    rows.forEach((c, i) => {
      expect(c[2]).toBe(FEATURES[i]!.unit);
      expect(Number(c[4])).toBeCloseTo(FEATURES[i]!.neutral, 5);
    });
    expect(readme).toContain(FEATURE_SCHEMA_HASH);
  });
});
