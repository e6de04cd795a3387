/**
 * Output files written all or nothing: a command that fails (a bad event on line 5,000, a model that does not
 * load, Ctrl-C) leaves the previous file as it was, never a truncated one that looks complete.
 */
import { randomBytes } from 'node:crypto';
import { constants, type Stats } from 'node:fs';
import {
  access,
  chmod,
  chown,
  mkdir,
  mkdtemp,
  open,
  readdir,
  realpath,
  rename,
  rm,
  stat,
} from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';

/**
 * Runs `fn` on a temporary path beside `path` (same directory, so the rename is atomic; same name ending, so a
 * format chosen by extension such as `.jsonl.gz` is kept) and renames it onto `path` once `fn` has resolved,
 * with the mode (and, as root, the owner) of the file it replaces. On failure the temporary file is removed
 * and `path` is untouched. A symbolic link is followed: the file it points to is replaced, the link stays. A
 * path that is not a regular file (a device such as /dev/stdout, a FIFO) is written directly, as before.
 * (A process killed outright leaves a `.tmp-` file beside the target, never a partial target.) The file is
 * fsynced before the rename and the directory after it, so that after a power loss the path holds the old file
 * or the whole new one, not an empty or partial file under the new name.
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
    await syncPath(tmp);
    await rename(tmp, target);
    await syncPath(dirname(target));
    return result;
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

/**
 * errors of an fsync that cannot be made rather than failed: a platform that does not fsync that kind of file
 * (a directory on some systems), a directory we may write into but not open for reading (mode -wx)
 */
const UNSYNCABLE = new Set(['EISDIR', 'EINVAL', 'EPERM', 'EBADF', 'ENOTSUP', 'EACCES']);
const unsyncable = (e: unknown) => UNSYNCABLE.has((e as NodeJS.ErrnoException).code ?? '');

/**
 * fsync `path` (a file's data, or a directory's entries: the renames made in it), so that what was written
 * or renamed survives a power loss. Where that cannot be done (see UNSYNCABLE) it is skipped, since the write
 * itself succeeded; a missing path is an error.
 */
export async function syncPath(path: string): Promise<void> {
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(path, 'r');
  } catch (e) {
    if (unsyncable(e)) return;
    throw e;
  }
  try {
    await handle.sync();
  } catch (e) {
    if (!unsyncable(e)) throw e;
  } finally {
    await handle.close();
  }
}

/** fsync every regular file directly in `dir` and then `dir` itself (before they are renamed elsewhere). */
export async function syncFilesIn(dir: string): Promise<void> {
  for (const entry of await readdir(dir, { withFileTypes: true }))
    if (entry.isFile()) await syncPath(join(dir, entry.name));
  await syncPath(dir);
}

/**
 * Writes a set of files into `dir` all together: `fn` writes them into a fresh staging directory inside `dir`
 * (created if need be), and only once it has resolved are they renamed into `dir` one by one (each replaced
 * file keeps its mode); other files and subdirectories of `dir` are left alone (a backtest's `--out` may hold
 * its sweeps). A failure while writing (a full disk, a chart that throws, Ctrl-C) leaves `dir` as it was; only
 * a process killed within the renames themselves (milliseconds) can leave old and new files side by side.
 */
export async function replaceFilesIn(dir: string, fn: (staging: string) => Promise<void>): Promise<void> {
  await mkdir(dir, { recursive: true });
  const staging = await mkdtemp(join(dir, `.tmp-${process.pid}-`));
  try {
    await fn(staging);
    await syncFilesIn(staging);
    for (const name of await readdir(staging)) {
      const target = join(dir, name);
      const existing = await stat(target).catch(() => undefined);
      if (existing?.isFile()) await chmod(join(staging, name), existing.mode & 0o7777);
      else if (!existing) await chmod(join(staging, name), 0o666 & ~process.umask());
      await rename(join(staging, name), target);
    }
    await syncPath(dir);
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

/**
 * The nearest existing path at or above `path` (resolved), with its stats. `stat` is used, so a symbolic link
 * is followed (a dangling one counts as missing). The walk goes up past a path whose stat fails with an error
 * `walkPast` accepts (by default any: a missing path, a path under a file, one that cannot be searched), and
 * throws the error of the first path it does not walk past, or of the root. Shared by `checkOutDir` and the
 * training run's model output check (training/model-dir.ts), which walks past a missing path only.
 */
export async function nearestExisting(
  path: string,
  walkPast: (e: unknown) => boolean = () => true,
): Promise<{ path: string; stats: Stats }> {
  let at = resolve(path);
  for (;;) {
    try {
      return { path: at, stats: await stat(at) };
    } catch (e) {
      if (!walkPast(e) || dirname(at) === at) throw e;
      at = dirname(at);
    }
  }
}

/**
 * Refuses, before any work, an output directory that cannot be written: it must be a directory if it exists,
 * else its nearest existing ancestor must be a writable directory. `option` names the flag in the message.
 */
export async function checkOutDir(dir: string, option = '--out'): Promise<void> {
  // walk up past missing paths and paths under a file (named below); any other failure (a symbolic-link loop,
  // a parent that cannot be searched) is reported as it is, not walked past to an ancestor that looks fine
  const missing = (e: unknown) => {
    const code = (e as NodeJS.ErrnoException).code;
    return code === 'ENOENT' || code === 'ENOTDIR';
  };
  const { path: at, stats: st } = await nearestExisting(dir, missing).catch((e: unknown) => {
    if (missing(e)) throw new Error(`${option} ${dir}: no existing parent directory`);
    throw new Error(`${option} ${dir}: ${(e as Error).message}`);
  });
  if (!st.isDirectory())
    throw new Error(
      at === resolve(dir)
        ? `${option} ${dir}: exists and is not a directory`
        : `${option} ${dir}: ${at} is not a directory`,
    );
  try {
    await access(at, constants.W_OK | constants.X_OK);
  } catch {
    throw new Error(`${option} ${dir}: ${at} is not writable`);
  }
}
