/**
 * A checkpoint directory as a stream of frames, one per regular file:
 *   u32 BE path length | path (UTF-8, relative, no `..`) | u32 BE size high | u32 BE size low | bytes
 * and a final frame of path length 0.
 *
 * The receiver writes into a fresh directory beside the target; every file is
 * fsynced, then every directory of it, then the directory is renamed into
 * place and its parent fsynced. Only then does `unpackDirectory` return (and
 * the endpoint acknowledge): an acknowledged checkpoint survives a power cut,
 * and a cut transfer never looks complete. The sizes the frames declare are
 * added up as they come: past `maxBytes` the stream is refused before its
 * bytes are read (CHECKPOINT_TOO_LARGE).
 *
 * The sender opens each file without following a symbolic link and ships it
 * only when it is a regular file of the directory's owner: a workload that
 * swaps a file of its checkpoint for a link cannot have the agent (root)
 * read someone else's file and hand it over.
 */
import { constants, createReadStream } from 'node:fs';
import { type FileHandle, mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises';
import { dirname, join, normalize, sep } from 'node:path';
import { AmalgamError } from '../../core/errors.ts';

const MAX_PATH = 4096;

async function listFiles(root: string, prefix = ''): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(join(root, prefix), { withFileTypes: true })) {
    const rel = prefix === '' ? entry.name : `${prefix}/${entry.name}`;
    if (entry.isDirectory()) out.push(...(await listFiles(root, rel)));
    else if (entry.isFile()) out.push(rel);
  }
  return out.sort();
}

/** Opens `file` for shipping: no symbolic link, a regular file, owned by `uid`. */
async function openShippable(file: string, uid: number): Promise<{ fh: FileHandle; size: number }> {
  const fh = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW);
  const s = await fh.stat();
  if (!s.isFile() || s.uid !== uid) {
    await fh.close();
    throw new Error(`${file} is not a regular file of the checkpoint's owner; not shipped`);
  }
  return { fh, size: s.size };
}

/** The bytes of the files `dir` would ship (the sender declares it before the body). */
export async function checkpointBytes(dir: string): Promise<number> {
  let total = 0;
  for (const rel of await listFiles(dir)) total += (await stat(join(dir, rel))).size;
  return total;
}

/** The frames of `dir`, as a stream of buffers. */
export async function* packDirectory(dir: string): AsyncGenerator<Buffer> {
  const owner = (await stat(dir)).uid;
  for (const rel of await listFiles(dir)) {
    const file = join(dir, rel);
    const { fh, size } = await openShippable(file, owner);
    try {
      const path = Buffer.from(rel, 'utf8');
      const header = Buffer.alloc(12);
      header.writeUInt32BE(path.length, 0);
      header.writeUInt32BE(Math.floor(size / 2 ** 32), 4);
      header.writeUInt32BE(size % 2 ** 32, 8);
      yield Buffer.concat([header.subarray(0, 4), path, header.subarray(4)]);
      let sent = 0;
      for await (const chunk of createReadStream('', { fd: fh, autoClose: false })) {
        const b = chunk as Buffer;
        const take = b.subarray(0, Math.max(0, size - sent));
        sent += take.length;
        yield take;
      }
      if (sent !== size) throw new Error(`${file} changed while it was sent`);
    } finally {
      await fh.close();
    }
  }
  yield Buffer.alloc(4); // path length 0: the end
}

function safeRelative(rel: string): string {
  const n = normalize(rel);
  if (n.startsWith('..') || n.startsWith(sep) || n.includes(`${sep}..${sep}`) || n === '.') {
    throw new Error(`unsafe path in checkpoint: ${JSON.stringify(rel)}`);
  }
  return n;
}

export function checkpointTooLarge(bytes: number, maxBytes: number): AmalgamError {
  return new AmalgamError(
    'CHECKPOINT_TOO_LARGE',
    `the checkpoint declares ${bytes} bytes or more; this agent takes at most ${maxBytes}`,
    { bytes, maxBytes },
  );
}

async function fsyncPath(path: string): Promise<void> {
  const fh = await open(path, constants.O_RDONLY);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function writeAll(fh: FileHandle, chunk: Buffer): Promise<void> {
  for (let off = 0; off < chunk.length; ) {
    const { bytesWritten } = await fh.write(chunk, off, chunk.length - off);
    off += bytesWritten;
  }
}

/** One file being received. */
interface Incoming {
  fh: FileHandle;
  left: number;
}

/** The frame parser: feeds bytes, opens, writes and fsyncs files under `temp`. */
class FrameReader {
  buf: Buffer = Buffer.alloc(0);
  files = 0;
  declared = 0;
  done = false;
  current: Incoming | null = null;
  readonly dirs = new Set<string>();

  constructor(
    readonly temp: string,
    readonly maxBytes: number,
  ) {
    this.dirs.add(temp);
  }

  async feed(chunk: Buffer): Promise<void> {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    while (await this.step());
  }

  /** One step of parsing; false when more bytes are needed. */
  async step(): Promise<boolean> {
    if (this.done) {
      if (this.buf.length > 0) throw new Error('bytes after the end of the checkpoint');
      return false;
    }
    if (this.current) return this.#body(this.current);
    if (this.buf.length < 4) return false;
    const pathLength = this.buf.readUInt32BE(0);
    if (pathLength === 0) {
      this.done = true;
      this.buf = this.buf.subarray(4);
      return true;
    }
    if (pathLength > MAX_PATH) throw new Error('path too long in checkpoint');
    if (this.buf.length < 4 + pathLength + 8) return false;
    const rel = safeRelative(this.buf.subarray(4, 4 + pathLength).toString('utf8'));
    const b = this.buf;
    const size = b.readUInt32BE(4 + pathLength) * 2 ** 32 + b.readUInt32BE(8 + pathLength);
    this.declared += size;
    if (this.declared > this.maxBytes) throw checkpointTooLarge(this.declared, this.maxBytes);
    this.buf = this.buf.subarray(12 + pathLength);
    const file = join(this.temp, rel);
    await this.#mkdirs(dirname(file));
    this.current = { fh: await open(file, 'wx', 0o600), left: size };
    if (size === 0) await this.#finish(this.current);
    return true;
  }

  async #body(current: Incoming): Promise<boolean> {
    const take = this.buf.subarray(0, Math.min(this.buf.length, current.left));
    if (take.length > 0) await writeAll(current.fh, take);
    current.left -= take.length;
    this.buf = this.buf.subarray(take.length);
    if (current.left > 0) return false;
    await this.#finish(current);
    return true;
  }

  async #finish(current: Incoming): Promise<void> {
    await current.fh.sync();
    await current.fh.close();
    this.current = null;
    this.files++;
  }

  async #mkdirs(dir: string): Promise<void> {
    if (this.dirs.has(dir)) return;
    await this.#mkdirs(dirname(dir));
    await mkdir(dir, { recursive: true });
    this.dirs.add(dir);
  }

  /** fsync every directory made, deepest first (the entries before their parents). */
  async syncDirs(): Promise<void> {
    const deepest = [...this.dirs].sort((a, b) => b.length - a.length);
    for (const d of deepest) await fsyncPath(d);
  }
}

/**
 * Reads frames from `input` into `target` (replaced atomically once complete
 * and durable); answers the number of files. `maxBytes`: the most file bytes
 * the frames may declare.
 */
export async function unpackDirectory(
  input: AsyncIterable<Buffer>,
  target: string,
  maxBytes = Number.MAX_SAFE_INTEGER,
): Promise<number> {
  const temp = `${target}.incoming-${process.pid}-${Date.now()}`;
  await rm(temp, { recursive: true, force: true });
  await mkdir(temp, { recursive: true });
  const reader = new FrameReader(temp, maxBytes);
  try {
    for await (const chunk of input) await reader.feed(chunk);
    if (!reader.done || reader.current) throw new Error('the checkpoint stream was cut');
    await reader.syncDirs();
    await rm(target, { recursive: true, force: true });
    await rename(temp, target);
    await fsyncPath(dirname(target));
    return reader.files;
  } catch (err) {
    await reader.current?.fh.close().catch(() => {});
    await rm(temp, { recursive: true, force: true });
    throw err;
  }
}
