/** Writing clusteradm's files: whole or not at all (temp file + rename), with the mode given. */
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';

/** Private keys and anything only their owner may read. */
export const PRIVATE = 0o600;
export const PUBLIC = 0o644;

export async function ensureDir(path: string, mode = 0o700): Promise<void> {
  await mkdir(path, { recursive: true, mode });
}

export async function writeFileAtomic(path: string, data: string, mode: number): Promise<void> {
  const temp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    await writeFile(temp, data, { mode, flag: 'wx' });
    // The mode given to open() is reduced by the umask; the file's mode must not be.
    await chmod(temp, mode);
    await rename(temp, path);
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
}

export async function writeJson(path: string, value: unknown, mode = PUBLIC): Promise<void> {
  await ensureDir(dirname(path));
  await writeFileAtomic(path, `${JSON.stringify(value, null, 2)}\n`, mode);
}
