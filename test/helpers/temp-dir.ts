/**
 * Temporary directories for tests, removed when the test that made them finishes (pass or fail).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { onTestFinished } from 'vitest';

/** A fresh directory under the OS temp dir, deleted with its contents once the calling test finishes. */
export function testTempDir(label: string): string {
  const dir = mkdtempSync(join(tmpdir(), `preempt-${label}-`));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}
