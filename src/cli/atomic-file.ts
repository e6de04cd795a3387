/**
 * Output files written all or nothing: a command that fails (a bad event on line 5,000, a model that does not
 * load, Ctrl-C) leaves the previous file as it was, never a truncated one that looks complete.
 */
import { randomBytes } from 'node:crypto';
import { chmod, chown, realpath, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/**
 * Runs `fn` on a temporary path beside `path` (same directory, so the rename is atomic; same name ending, so a
 * format chosen by extension such as `.jsonl.gz` is kept) and renames it onto `path` once `fn` has resolved,
 * with the mode (and, as root, the owner) of the file it replaces. On failure the temporary file is removed
 * and `path` is untouched. A symbolic link is followed: the file it points to is replaced, the link stays. A
 * path that is not a regular file (a device such as /dev/stdout, a FIFO) is written directly, as before.
 * (A process killed outright leaves a `.tmp-` file beside the target, never a partial target. No fsync: this
 * guards against a failed or killed process, not a power loss.)
 */
export async function writeAtomically<T>(path: string, fn: (tmp: string) => Promise<T>): Promise<T> {
  const target = await realpath(path).catch(() => path);
  const existing = await stat(target).catch(() => undefined);
  if (existing && !existing.isFile()) return fn(target);
  const tmp = join(
    dirname(target),
    `.tmp-${process.pid}-${randomBytes(4).toString('hex')}-${basename(target)}`,
  );
  try {
    const result = await fn(tmp);
    if (existing) {
      await chmod(tmp, existing.mode & 0o7777);
      if (process.getuid?.() === 0) await chown(tmp, existing.uid, existing.gid);
    }
    await rename(tmp, target);
    return result;
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}
