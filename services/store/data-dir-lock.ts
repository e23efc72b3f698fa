/**
 * One process per data directory: an flock(2) on `<dataDir>/LOCK`.
 *
 * The lock belongs to the open file description, so the kernel drops it when
 * the holder dies however it dies: no stale lock to take over, and no guess
 * from a PID written in a file (which a reboot or PID reuse can make name
 * someone else). Node has no flock, so util-linux's flock(1) (util-linux is
 * already needed for setpriv) takes it on our descriptor, passed as its fd 3:
 * the child shares the open file description, so the lock stays with our fd
 * after flock(1) exits. Our fd is close-on-exec, so no other child of ours
 * inherits it. The file holds the owner's pid for people to read, never to
 * decide. Release unlinks the file while still holding the lock; a taker
 * checks after locking that the path is still the file it locked, else
 * retries (it locked a file that was just unlinked).
 */
import { spawn } from 'node:child_process';
import { constants } from 'node:fs';
import { type FileHandle, open, readFile, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { AmalgamError } from '../core/errors.ts';

const LOCK_FILE = 'LOCK';
const CONFLICT = 75;

export interface DataDirLock {
  release(): Promise<void>;
}

export async function lockDataDir(dataDir: string): Promise<DataDirLock> {
  const path = join(dataDir, LOCK_FILE);
  for (let attempt = 0; attempt < 10; attempt++) {
    const fh = await open(path, constants.O_RDWR | constants.O_CREAT, 0o644);
    let mine = false;
    try {
      if (!(await flockNonBlocking(fh))) throw locked(dataDir, await readOwner(path));
      if (!(await samePath(fh, path))) continue; // unlinked by a releasing owner: retry
      await fh.truncate(0);
      await fh.write(`${process.pid}\n`, 0);
      mine = true;
      return {
        async release() {
          await unlink(path).catch(() => undefined);
          await fh.close();
        },
      };
    } finally {
      if (!mine) await fh.close();
    }
  }
  throw locked(dataDir, await readOwner(path));
}

/** flock(LOCK_EX | LOCK_NB) on `fh`, through flock(1): true when taken, false when held. */
function flockNonBlocking(fh: FileHandle): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      'flock',
      ['--nonblock', '--exclusive', '--conflict-exit-code', String(CONFLICT), '3'],
      {
        stdio: ['ignore', 'ignore', 'pipe', fh.fd],
      },
    );
    let stderr = '';
    child.stderr?.on('data', (d) => {
      stderr += String(d);
    });
    child.once('error', (err) =>
      reject(new Error(`flock(1) (util-linux) is needed: ${err.message}`)),
    );
    child.once('exit', (code) => {
      if (code === 0) resolve(true);
      else if (code === CONFLICT) resolve(false);
      else reject(new Error(`flock failed (${code}): ${stderr.trim()}`));
    });
  });
}

async function samePath(fh: FileHandle, path: string): Promise<boolean> {
  const [held, now] = await Promise.all([fh.stat(), stat(path).catch(() => null)]);
  return now !== null && now.ino === held.ino && now.dev === held.dev;
}

async function readOwner(path: string): Promise<number | undefined> {
  try {
    const pid = Number.parseInt(await readFile(path, 'utf8'), 10);
    return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

function locked(dataDir: string, pid: number | undefined): AmalgamError {
  return new AmalgamError('DATA_DIR_LOCKED', `${dataDir} is held by pid ${pid ?? 'unknown'}`, {
    dataDir,
    pid,
  });
}
