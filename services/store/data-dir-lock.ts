/**
 * One process per data directory: a lock file created with O_EXCL that holds
 * the owner's pid. A lock whose pid is no longer running was left by a crash
 * and is taken over.
 */

import { link, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { AmalgamError } from '../core/errors.ts';

const LOCK_FILE = 'LOCK';

export interface DataDirLock {
  release(): Promise<void>;
}

export async function lockDataDir(dataDir: string): Promise<DataDirLock> {
  const path = join(dataDir, LOCK_FILE);
  if (!(await tryCreate(path))) {
    await takeOverStaleLock(dataDir, path);
    if (!(await tryCreate(path))) throw locked(dataDir, await readOwner(path));
  }
  return {
    async release() {
      // Only remove the file if it is still ours.
      if ((await readOwner(path)) === process.pid) await unlink(path);
    },
  };
}

/**
 * Creates the lock with its content in one step (write a private file, then
 * hard-link it into place, which fails if the lock exists), so nobody can
 * read a half-written lock and take it for stale.
 */
async function tryCreate(path: string): Promise<boolean> {
  const draft = `${path}.${process.pid}.tmp`;
  await writeFile(draft, `${process.pid}\n`);
  try {
    await link(draft, path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  } finally {
    await unlink(draft);
  }
}

/**
 * Moves a dead owner's lock aside. The rename is atomic, so of several
 * processes racing for the same stale lock only one moves it; one that finds
 * it moved a live owner's lock instead puts it back and reports the lock held.
 */
async function takeOverStaleLock(dataDir: string, path: string): Promise<void> {
  const owner = await readOwner(path);
  if (owner === undefined) return; // vanished meanwhile: just retry the create
  if (isRunning(owner)) throw locked(dataDir, owner);
  const aside = `${path}.stale-${process.pid}`;
  try {
    await rename(path, aside);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  const moved = await readOwner(aside);
  if (moved !== undefined && moved !== owner && isRunning(moved)) {
    await link(aside, path).catch(() => undefined);
    await unlink(aside);
    throw locked(dataDir, moved);
  }
  await unlink(aside);
}

async function readOwner(path: string): Promise<number | undefined> {
  try {
    const pid = Number.parseInt(await readFile(path, 'utf8'), 10);
    return Number.isSafeInteger(pid) && pid > 0 ? pid : 0;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

function isRunning(pid: number): boolean {
  // Unreadable content: not a pid of ours, so no live owner.
  if (pid === 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: the process exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function locked(dataDir: string, pid: number | undefined): AmalgamError {
  return new AmalgamError('DATA_DIR_LOCKED', `${dataDir} is held by pid ${pid ?? 'unknown'}`, {
    dataDir,
    pid,
  });
}
