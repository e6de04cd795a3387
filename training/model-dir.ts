/**
 * Where a training run writes its model directory: never into `--out` itself. The run builds the whole
 * directory (network, metadata, report) in a temporary sibling `OUT.tmp-PID-XXXXXX` (same parent, so the
 * same filesystem and an atomic rename), and only once it is complete moves it into place: an existing `OUT`
 * is renamed aside (`OUT.old-PID-XXXXXXXX`), the new directory renamed to `OUT`, then the old one removed. A
 * run that fails removes its temporary directory and leaves `OUT` as it was; a run killed outright (SIGKILL,
 * or SIGINT/SIGTERM, which end the process at once) can leave only the temporary sibling, never a half-written `OUT`.
 */
import { randomBytes } from 'node:crypto';
import { constants, type Stats } from 'node:fs';
import { access, lstat, mkdir, mkdtemp, readdir, rename, rm, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { METADATA_JSON } from '../src/model/artifacts.js';
import { MODEL_JSON } from '../src/tf/fs-io.js';

export class TrainingOutputError extends Error {
  readonly code = 'TRAINING_OUTPUT';
}

const errno = (e: unknown) => (e as NodeJS.ErrnoException).code;

/**
 * Refuse, before any work, an output the run could not write or must not replace: its parent must exist as a
 * writable directory or be creatable (its nearest existing ancestor a writable directory), and `out`, if it
 * exists, must be a model directory (holding metadata.json or model.json) or empty: the run replaces it
 * whole. Returns the absolute path.
 */
export async function checkModelOut(out: string): Promise<string> {
  const target = resolve(out);
  const parent = dirname(target);
  if (parent === target)
    throw new TrainingOutputError(
      `cannot write the model to ${out}: not a directory a model can be written to`,
    );
  let ancestor = parent;
  let st: Stats;
  for (;;) {
    try {
      st = await stat(ancestor);
      break;
    } catch (e) {
      if (errno(e) === 'ENOENT' && dirname(ancestor) !== ancestor) {
        ancestor = dirname(ancestor);
        continue;
      }
      throw new TrainingOutputError(
        `cannot write the model to ${out}: cannot create its parent directory ${parent}: ${(e as Error).message}`,
      );
    }
  }
  if (!st.isDirectory())
    throw new TrainingOutputError(
      `cannot write the model to ${out}: cannot create its parent directory ${parent}: ${ancestor} is not a directory`,
    );
  try {
    await access(ancestor, constants.W_OK | constants.X_OK);
  } catch {
    throw new TrainingOutputError(`cannot write the model to ${out}: ${ancestor} is not writable`);
  }
  await assertReplaceable(target, out);
  return target;
}

/** `target` is absent, an empty directory or a model directory. */
async function assertReplaceable(target: string, out: string): Promise<void> {
  let st: Stats;
  try {
    st = await lstat(target);
  } catch (e) {
    if (errno(e) === 'ENOENT') return;
    throw new TrainingOutputError(`cannot write the model to ${out}: ${(e as Error).message}`);
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

/** A fresh, empty temporary directory beside `target` (absolute, from `checkModelOut`). */
export async function stagingDir(target: string): Promise<string> {
  await mkdir(dirname(target), { recursive: true });
  return mkdtemp(`${target}.tmp-${process.pid}-`);
}

/**
 * Move the complete directory `staged` to `target`, replacing what is there. `target` is missing only
 * between the two renames; should the second fail, the old directory is put back.
 */
export async function promoteDir(staged: string, target: string): Promise<void> {
  await assertReplaceable(target, target);
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
  // the new model is in place: a set-aside directory that cannot be removed is left, not a failed run
  if (aside) await rm(aside, { recursive: true, force: true }).catch(() => {});
}

/** Remove a staging directory after a failed run (never throws: the run's own error is the one to report). */
export async function discardStaging(staged: string): Promise<void> {
  await rm(staged, { recursive: true, force: true }).catch(() => {});
}
