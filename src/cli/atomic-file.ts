/**
 * Output files written all or nothing: a command that fails (a bad event on line 5,000, a model that does not
 * load, Ctrl-C) leaves the previous file as it was, never a truncated one that looks complete.
 */
import { randomBytes } from 'node:crypto';
import { rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/**
 * Runs `fn` on a temporary path beside `path` (same directory, so the rename is atomic; same name ending, so a
 * format chosen by extension such as `.jsonl.gz` is kept) and renames it onto `path` once `fn` has resolved.
 * On failure the temporary file is removed and `path` is untouched. (A process killed outright leaves a
 * `.tmp-` file beside `path`, never a partial `path`.)
 */
export async function writeAtomically<T>(path: string, fn: (tmp: string) => Promise<T>): Promise<T> {
  const tmp = join(dirname(path), `.tmp-${process.pid}-${randomBytes(4).toString('hex')}-${basename(path)}`);
  try {
    const result = await fn(tmp);
    await rename(tmp, path);
    return result;
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}
