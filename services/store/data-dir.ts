/**
 * The embedded store's files: snapshots, log segments, and rebuilding the
 * state from them.
 *
 *   snapshot-<index>.json   the state after log record <index> (1-based)
 *   wal-<index>.log         a log segment whose first record is <index>
 *
 * Files are named by log index, not store revision: lease grants and
 * compactions are logged but leave the revision unchanged, so only the index
 * says where in the log a snapshot stands. A snapshot at index k is always
 * paired with a segment starting at k + 1, so every older segment is
 * obsolete once the snapshot is durable.
 */

import { mkdir, open, readdir, readFile, rename, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { AmalgamError, isAmalgamError } from '../core/errors.ts';
import { Mvcc, type MvccSnapshot, type StoreCommand } from './mvcc.ts';
import { readWal, recoverWal, type StoreLogger, syncDirectory } from './wal.ts';

const SNAPSHOT_FORMAT = 1;
const SNAPSHOT_FILE = /^snapshot-(\d{16})\.json$/;
const SEGMENT_FILE = /^wal-(\d{16})\.log$/;
const SNAPSHOT_DRAFT = 'snapshot.json.tmp';

export function segmentPath(dataDir: string, firstIndex: number): string {
  return join(dataDir, `wal-${pad(firstIndex)}.log`);
}

function snapshotPath(dataDir: string, index: number): string {
  return join(dataDir, `snapshot-${pad(index)}.json`);
}

function pad(index: number): string {
  return String(index).padStart(16, '0');
}

interface SnapshotFile {
  format: number;
  index: number;
  state: MvccSnapshot;
}

/** Serializes the state after log record `index`; call it synchronously at that point. */
export function encodeSnapshot(index: number, mvcc: Mvcc): string {
  const file: SnapshotFile = { format: SNAPSHOT_FORMAT, index, state: mvcc.snapshot() };
  return JSON.stringify(file);
}

/**
 * Makes a snapshot durable (write a draft, fsync, rename, fsync the
 * directory), then deletes the snapshots and segments it replaces.
 */
export async function writeSnapshot(dataDir: string, index: number, body: string): Promise<void> {
  const draft = join(dataDir, SNAPSHOT_DRAFT);
  const handle = await open(draft, 'w');
  try {
    await handle.writeFile(body);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(draft, snapshotPath(dataDir, index));
  await syncDirectory(dataDir);
  const { snapshots, segments } = await listFiles(dataDir);
  for (const older of snapshots.filter((s) => s.index < index)) await unlink(older.path);
  for (const older of segments.filter((s) => s.index <= index)) await unlink(older.path);
}

export interface RecoveredState {
  mvcc: Mvcc;
  /** Index of the last record in the log (0 for an empty log). */
  lastIndex: number;
  /** Records logged after the snapshot the state was loaded from. */
  recordsSinceSnapshot: number;
}

/**
 * Loads the newest readable snapshot and replays the segments after it. A
 * torn tail of the last segment is cut off (it was never acknowledged); a gap
 * between segments or damage anywhere else is WAL_CORRUPT.
 */
export async function recoverDataDir(
  dataDir: string,
  logger: StoreLogger,
  maxRecordBytes: number,
): Promise<RecoveredState> {
  await mkdir(dataDir, { recursive: true });
  await unlink(join(dataDir, SNAPSHOT_DRAFT)).catch(() => undefined);
  const { snapshots, segments } = await listFiles(dataDir);

  let mvcc = new Mvcc();
  let baseIndex = 0;
  for (const snapshot of [...snapshots].reverse()) {
    try {
      mvcc = await loadSnapshot(snapshot.path, snapshot.index);
      baseIndex = snapshot.index;
      break;
    } catch (err) {
      logger.error({ path: snapshot.path, err }, 'snapshot unreadable; trying an older one');
    }
  }

  const replay: typeof segments = [];
  for (const segment of segments) {
    // Left by a crash between a snapshot and the clean-up, or created just
    // before a crash and never written: nothing in them is needed.
    if (segment.index <= baseIndex || (await stat(segment.path)).size === 0) {
      await unlink(segment.path);
    } else {
      replay.push(segment);
    }
  }

  let nextIndex = baseIndex + 1;
  for (const [position, segment] of replay.entries()) {
    if (segment.index !== nextIndex) {
      throw new AmalgamError('WAL_CORRUPT', `${segment.path}: expected record ${nextIndex} first`, {
        path: segment.path,
      });
    }
    const isLast = position === replay.length - 1;
    const contents = isLast
      ? await recoverWal(segment.path, logger, maxRecordBytes)
      : await readWal(segment.path, maxRecordBytes);
    if (contents.tornBytes > 0) {
      throw new AmalgamError('WAL_CORRUPT', `${segment.path}: torn write before the last segment`, {
        path: segment.path,
      });
    }
    for (const command of contents.payloads) {
      applyLogged(mvcc, command as StoreCommand, segment.path, nextIndex);
      nextIndex++;
    }
  }
  return { mvcc, lastIndex: nextIndex - 1, recordsSinceSnapshot: nextIndex - 1 - baseIndex };
}

/**
 * Only commands that applied cleanly are logged, so one that fails on replay
 * means the log and the snapshot disagree.
 */
function applyLogged(mvcc: Mvcc, command: StoreCommand, path: string, index: number): void {
  try {
    mvcc.apply(command);
  } catch (err) {
    const detail = isAmalgamError(err) ? err.code : String(err);
    throw new AmalgamError('WAL_CORRUPT', `${path}: record ${index} does not apply (${detail})`, {
      path,
      index,
    });
  }
}

async function loadSnapshot(path: string, index: number): Promise<Mvcc> {
  const file = JSON.parse(await readFile(path, 'utf8')) as SnapshotFile;
  if (file.format !== SNAPSHOT_FORMAT || file.index !== index) {
    throw new Error(`format ${file.format} index ${file.index} not expected`);
  }
  return Mvcc.fromSnapshot(file.state);
}

interface IndexedFile {
  index: number;
  path: string;
}

/** Snapshots and segments, each in index order. */
async function listFiles(
  dataDir: string,
): Promise<{ snapshots: IndexedFile[]; segments: IndexedFile[] }> {
  const snapshots: IndexedFile[] = [];
  const segments: IndexedFile[] = [];
  for (const name of (await readdir(dataDir)).sort()) {
    const snapshot = SNAPSHOT_FILE.exec(name);
    if (snapshot) snapshots.push({ index: Number(snapshot[1]), path: join(dataDir, name) });
    const segment = SEGMENT_FILE.exec(name);
    if (segment) segments.push({ index: Number(segment[1]), path: join(dataDir, name) });
  }
  return { snapshots, segments };
}
