/**
 * Where a training run writes its model directory: never into `--out` itself. The run builds the whole
 * directory (network, metadata, report) in a temporary sibling `OUT.tmp-PID-XXXXXX` (same parent, so the
 * same filesystem and an atomic rename), and only once it is complete moves it into place: an existing `OUT`
 * is renamed aside (`OUT.old-PID-XXXXXXXX`), the new directory renamed to `OUT`, then the old one removed. A
 * run that fails removes its temporary directory and leaves `OUT` as it was; a run killed outright (SIGKILL,
 * or SIGINT/SIGTERM, which end the process at once) can leave only the temporary sibling, never a half-written `OUT`.
 * Files are moved, never rewritten, so the digests `metadata.json` records of the network (`writeMetadata`) hold
 * in `OUT`; a load racing the move reads the directory again (`readModelFiles`).
 */
import { randomBytes } from 'node:crypto';
import { constants, type Stats } from 'node:fs';
import { access, chmod, lstat, mkdir, mkdtemp, readdir, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { nearestExisting, syncFilesIn, syncPath } from '../src/cli/atomic-file.js';
import { METADATA_JSON } from '../src/model/artifacts.js';
import { MODEL_JSON } from '../src/tf/fs-io.js';

export class TrainingOutputError extends Error {
  readonly code = 'TRAINING_OUTPUT';
}

const errno = (e: unknown) => (e as NodeJS.ErrnoException).code;

/** Where and how a run's model directory is put in place (from `checkModelOut`). */
export interface ModelOut {
  /** absolute path of `--out` */
  target: string;
  /**
   * `--out` is a directory the run cannot swap by renaming (a mount point, or its parent is not writable):
   * the new model is staged inside it and its files moved in one by one, `metadata.json` removed first and
   * written last, so that a run stopped half way leaves a directory that does not load, never a mixed model
   */
  inPlace: boolean;
  /** permission bits the finished directory gets: those of the directory it replaces, else 0777 less umask */
  mode: number;
}

/**
 * Refuse, before any work, an output the run could not write or must not replace: its parent must exist as a
 * writable directory or be creatable (its nearest existing ancestor a writable directory), and `out`, if it
 * exists, must be a model directory (holding metadata.json or model.json) or empty: the run replaces it
 * whole. Says where and how the model goes in (`ModelOut`).
 */
export async function checkModelOut(out: string): Promise<ModelOut> {
  const target = resolve(out);
  const parent = dirname(target);
  if (parent === target)
    throw new TrainingOutputError(
      `cannot write the model to ${out}: not a directory a model can be written to`,
    );
  const { path: ancestor, stats: st } = await nearestExisting(parent, (e) => errno(e) === 'ENOENT').catch(
    (e) => {
      throw new TrainingOutputError(
        `cannot write the model to ${out}: cannot create its parent directory ${parent}: ${(e as Error).message}`,
        { cause: e },
      );
    },
  );
  if (!st.isDirectory())
    throw new TrainingOutputError(
      `cannot write the model to ${out}: cannot create its parent directory ${parent}: ${ancestor} is not a directory`,
    );
  const existing = await stat(target).catch(() => undefined);
  const defaultMode = 0o777 & ~process.umask();
  if (existing?.isDirectory()) {
    const parentWritable = await access(parent, constants.W_OK | constants.X_OK).then(
      () => true,
      () => false,
    );
    if (existing.dev !== st.dev || !parentWritable) {
      try {
        await access(target, constants.W_OK | constants.X_OK);
      } catch {
        throw new TrainingOutputError(`cannot write the model to ${out}: it is not writable`);
      }
      await assertReplaceable(target, out);
      return { target, inPlace: true, mode: existing.mode & 0o7777 };
    }
  }
  try {
    await access(ancestor, constants.W_OK | constants.X_OK);
  } catch {
    throw new TrainingOutputError(`cannot write the model to ${out}: ${ancestor} is not writable`);
  }
  await assertReplaceable(target, out);
  return { target, inPlace: false, mode: existing?.isDirectory() ? existing.mode & 0o7777 : defaultMode };
}

/** `target` is absent, an empty directory or a model directory. */
async function assertReplaceable(target: string, out: string): Promise<void> {
  let st: Stats;
  try {
    st = await lstat(target);
  } catch (e) {
    if (errno(e) === 'ENOENT') return;
    throw new TrainingOutputError(`cannot write the model to ${out}: ${(e as Error).message}`, { cause: e });
  }
  if (st.isSymbolicLink())
    throw new TrainingOutputError(
      `cannot write the model to ${out}: it is a symbolic link (the run would replace the link, not what it points to): give the directory itself`,
    );
  if (!st.isDirectory())
    throw new TrainingOutputError(`cannot write the model to ${out}: it exists and is not a directory`);
  const entries = await readdir(target);
  if (entries.length > 0 && !entries.includes(METADATA_JSON) && !entries.includes(MODEL_JSON))
    throw new TrainingOutputError(
      `cannot write the model to ${out}: it exists and is not a model directory (no ${METADATA_JSON} or ${MODEL_JSON}); a training run replaces its output directory whole, so it refuses one that may hold other files`,
    );
}

/** A fresh, empty temporary directory beside `out.target` (inside it when `inPlace`), with `out.mode`. */
export async function stagingDir(out: ModelOut): Promise<string> {
  const { target } = out;
  let dir: string;
  if (out.inPlace) dir = await mkdtemp(join(target, `.tmp-${process.pid}-`));
  else {
    await mkdir(dirname(target), { recursive: true });
    dir = await mkdtemp(`${target}.tmp-${process.pid}-`);
  }
  // mkdtemp makes it 0700: a model another user (the service) must read would not load
  await chmod(dir, out.mode);
  return dir;
}

/**
 * Move the complete directory `staged` to `out.target`, replacing what is there. Swapped: `target` is
 * missing only between the two renames (a process killed there leaves the previous model in
 * `TARGET.old-...`); should the second rename fail, the old directory is put back. In place: see `ModelOut`.
 */
export async function promoteDir(staged: string, out: ModelOut): Promise<void> {
  const { target } = out;
  await assertReplaceable(target, target);
  // the new model's files on disk before any rename, the renames on disk after: a power loss leaves the old
  // model or the new one whole
  await syncFilesIn(staged);
  if (out.inPlace) return promoteInPlace(staged, target);
  let aside: string | undefined = `${target}.old-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    await rename(target, aside);
  } catch (e) {
    if (errno(e) !== 'ENOENT') throw e;
    aside = undefined;
  }
  try {
    await rename(staged, target);
  } catch (e) {
    if (aside) await rename(aside, target).catch(() => {});
    throw e;
  }
  await syncPath(dirname(target));
  // the new model is in place: a set-aside directory that cannot be removed is left, not a failed run
  if (aside) await rm(aside, { recursive: true, force: true }).catch(() => {});
}

async function promoteInPlace(staged: string, target: string): Promise<void> {
  const stagedName = basename(staged);
  const fresh = await readdir(staged);
  // no metadata, no model: from here until the last rename the directory refuses to load
  await rm(join(target, METADATA_JSON), { force: true });
  for (const name of await readdir(target))
    if (name !== stagedName && !fresh.includes(name))
      await rm(join(target, name), { recursive: true, force: true });
  for (const name of fresh.filter((n) => n !== METADATA_JSON))
    await rename(join(staged, name), join(target, name));
  if (fresh.includes(METADATA_JSON)) await rename(join(staged, METADATA_JSON), join(target, METADATA_JSON));
  await syncPath(target);
  await rm(staged, { recursive: true, force: true });
}

/** Remove a staging directory after a failed run (never throws: the run's own error is the one to report). */
export async function discardStaging(staged: string): Promise<void> {
  await rm(staged, { recursive: true, force: true }).catch(() => {});
}
