/**
 * The write-ahead log: an append-only file of checksummed records.
 *
 * Record format (little-endian):
 *
 *   [u32 payload length][u32 crc32 of payload][payload: JSON, UTF-8]
 *
 * Appends use group commit: the records queued while a write + fdatasync is in
 * flight go out together in the next single write + fdatasync, and every
 * append's promise resolves only once its bytes are durable.
 *
 * Reading tells a torn tail (a crash in the middle of the last write: the last
 * record ends past the end of the file, fails its checksum and ends exactly at
 * the end of the file, or is followed only by zeros) from damage in the middle,
 * which nothing may silently drop: a bad record followed by more data, or by
 * any valid record, is WAL_CORRUPT.
 */

import { type FileHandle, open, truncate } from 'node:fs/promises';
import { dirname } from 'node:path';
import { crc32 } from 'node:zlib';
import { AmalgamError } from '../core/errors.ts';

export const HEADER_BYTES = 8;
/** Largest payload accepted, checked before anything is allocated for it. */
export const DEFAULT_MAX_RECORD_BYTES = 16 * 1024 * 1024;

/** The part of a pino logger the store uses. */
export interface StoreLogger {
  warn(details: object, message: string): void;
  error(details: object, message: string): void;
}

/** Frames a payload as one record; throws INVALID_ARGUMENT when it is too large. */
export function encodeRecord(payload: unknown, maxRecordBytes = DEFAULT_MAX_RECORD_BYTES): Buffer {
  const body = Buffer.from(JSON.stringify(payload), 'utf8');
  if (body.length > maxRecordBytes) {
    throw new AmalgamError('INVALID_ARGUMENT', `request of ${body.length} bytes is too large`, {
      bytes: body.length,
      maxBytes: maxRecordBytes,
    });
  }
  const record = Buffer.allocUnsafe(HEADER_BYTES + body.length);
  record.writeUInt32LE(body.length, 0);
  record.writeUInt32LE(crc32(body), 4);
  body.copy(record, HEADER_BYTES);
  return record;
}

interface PendingAppend {
  record: Buffer;
  resolve: () => void;
  reject: (err: unknown) => void;
}

export interface WalWriterOptions {
  /** Create the file, failing if it exists (a new segment). Default: append to it. */
  create?: boolean;
  /**
   * Nothing is written before this settles: a new segment waits for the
   * previous one to be durable, so the log on disk never has a gap.
   */
  after?: Promise<unknown>;
}

/**
 * Appends records to one log file with group commit. The file is opened by
 * the first flush, so a writer is created synchronously and keeps the order
 * of appends across segment switches.
 */
export class WalWriter {
  readonly path: string;
  readonly #options: WalWriterOptions;
  #queue: PendingAppend[] = [];
  #handle: FileHandle | undefined;
  #flushing: Promise<void> | undefined;
  #failure: unknown;
  #closed = false;

  constructor(path: string, options: WalWriterOptions = {}) {
    this.path = path;
    this.#options = options;
  }

  /** Resolves once `record` (from encodeRecord) is durable on disk. */
  append(record: Buffer): Promise<void> {
    if (this.#closed) return Promise.reject(new AmalgamError('STORE_CLOSED', 'log closed'));
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    return new Promise((resolve, reject) => {
      this.#queue.push({ record, resolve, reject });
      // Start on a microtask, so appends made in the same tick share a batch.
      if (!this.#flushing) this.#flushing = Promise.resolve().then(() => this.#flush());
    });
  }

  /** Waits for every queued append to be durable, then closes the file. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#flushing;
    const handle = this.#handle;
    this.#handle = undefined;
    await handle?.close();
    if (this.#failure !== undefined) throw this.#failure;
  }

  async #flush(): Promise<void> {
    try {
      while (this.#queue.length > 0) {
        const batch = this.#queue;
        this.#queue = [];
        try {
          if (this.#failure !== undefined) throw this.#failure;
          const handle = this.#handle ?? (await this.#open());
          await writeFully(handle, Buffer.concat(batch.map((p) => p.record)));
          await handle.datasync();
        } catch (err) {
          // After a failed write the file's tail is unknown: refuse everything
          // from now on rather than acknowledge records behind a hole.
          this.#failure ??= err;
          for (const pending of batch) pending.reject(err);
          continue;
        }
        for (const pending of batch) pending.resolve();
      }
    } finally {
      this.#flushing = undefined;
    }
  }

  async #open(): Promise<FileHandle> {
    await this.#options.after;
    const handle = await open(this.path, this.#options.create ? 'ax' : 'a');
    this.#handle = handle;
    // A new file's directory entry must be durable too, or an fdatasync'd
    // record could vanish with its file after a power loss.
    if (this.#options.create) await syncDirectory(dirname(this.path));
    return handle;
  }
}

async function writeFully(handle: FileHandle, bytes: Buffer): Promise<void> {
  let offset = 0;
  while (offset < bytes.length) {
    const { bytesWritten } = await handle.write(bytes, offset, bytes.length - offset);
    offset += bytesWritten;
  }
}

export async function syncDirectory(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

export interface WalContents {
  /** The decoded payloads, in order. */
  payloads: unknown[];
  /** Bytes of whole, valid records from the start of the file. */
  validBytes: number;
  /** Bytes after validBytes that belong to a torn last write (0 when clean). */
  tornBytes: number;
}

/**
 * Reads a log file without changing it. Throws WAL_CORRUPT on a bad record
 * that is not a torn tail.
 */
export async function readWal(
  path: string,
  maxRecordBytes = DEFAULT_MAX_RECORD_BYTES,
): Promise<WalContents> {
  const handle = await open(path, 'r');
  try {
    const reader = new ChunkedReader(handle, (await handle.stat()).size);
    const payloads: unknown[] = [];
    let offset = 0;
    while (offset < reader.size) {
      const record = await readRecord(reader, offset, maxRecordBytes);
      if ('end' in record) {
        payloads.push(record.payload);
        offset = record.end;
        continue;
      }
      // A tear looks like one of the shapes below. But a damaged length field
      // in the middle can look the same, so a valid record anywhere after the
      // damage means the damage is not at the tail: never drop such a record.
      const tornShape = record.torn || (await reader.zeroFrom(offset));
      if (tornShape && !(await validRecordAfter(reader, offset, maxRecordBytes))) {
        return { payloads, validBytes: offset, tornBytes: reader.size - offset };
      }
      throw new AmalgamError('WAL_CORRUPT', `${path}: ${record.reason} at offset ${offset}`, {
        path,
        offset,
      });
    }
    return { payloads, validBytes: offset, tornBytes: 0 };
  } finally {
    await handle.close();
  }
}

/**
 * Reads a log file and cuts a torn tail off it (the records in it were never
 * acknowledged: their fdatasync did not complete). Damage anywhere else
 * throws WAL_CORRUPT.
 */
export async function recoverWal(
  path: string,
  logger: StoreLogger,
  maxRecordBytes = DEFAULT_MAX_RECORD_BYTES,
): Promise<WalContents> {
  const contents = await readWal(path, maxRecordBytes);
  if (contents.tornBytes > 0) {
    logger.warn(
      { path, validBytes: contents.validBytes, droppedBytes: contents.tornBytes },
      'write-ahead log ends in a torn write; dropping it',
    );
    await truncate(path, contents.validBytes);
    const handle = await open(path, 'r+');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  }
  return contents;
}

type RecordRead = { end: number; payload: unknown } | { torn: boolean; reason: string };

/**
 * Decodes the record at `offset`, or says why there is none: `torn` when the
 * damage has the shape of an interrupted last write (ends past the end of
 * the file, or fails its checksum and ends exactly at the end).
 */
async function readRecord(
  reader: ChunkedReader,
  offset: number,
  maxRecordBytes: number,
): Promise<RecordRead> {
  if (reader.size - offset < HEADER_BYTES) return { torn: true, reason: 'partial header' };
  const header = await reader.read(offset, HEADER_BYTES);
  const length = header.readUInt32LE(0);
  const checksum = header.readUInt32LE(4);
  const end = offset + HEADER_BYTES + length;
  if (end > reader.size) return { torn: true, reason: 'record ends past the end of the file' };
  if (length === 0 || length > maxRecordBytes) {
    return { torn: end === reader.size, reason: `bad record length ${length}` };
  }
  const payload = await reader.read(offset + HEADER_BYTES, length);
  if (crc32(payload) !== checksum) return { torn: end === reader.size, reason: 'bad checksum' };
  try {
    return { end, payload: JSON.parse(payload.toString('utf8')) };
  } catch {
    // The checksum held, so these bytes are what was written: not a tear.
    return { torn: false, reason: 'record is not JSON' };
  }
}

/** True when a valid record starts at any offset after `offset`. */
async function validRecordAfter(
  reader: ChunkedReader,
  offset: number,
  maxRecordBytes: number,
): Promise<boolean> {
  for (let at = offset + 1; at + HEADER_BYTES < reader.size; at++) {
    const length = (await reader.read(at, HEADER_BYTES)).readUInt32LE(0);
    if (length === 0 || length > maxRecordBytes || at + HEADER_BYTES + length > reader.size) {
      continue;
    }
    if ('end' in (await readRecord(reader, at, maxRecordBytes))) return true;
  }
  return false;
}

const CHUNK_BYTES = 1024 * 1024;

/** Reads a file through a window of about a megabyte. */
class ChunkedReader {
  readonly size: number;
  readonly #handle: FileHandle;
  #window = Buffer.alloc(0);
  #windowStart = 0;

  constructor(handle: FileHandle, size: number) {
    this.#handle = handle;
    this.size = size;
  }

  /** Exactly `length` bytes at `offset`; the caller keeps within the file. */
  async read(offset: number, length: number): Promise<Buffer> {
    const start = offset - this.#windowStart;
    if (start >= 0 && start + length <= this.#window.length) {
      return this.#window.subarray(start, start + length);
    }
    const window = Buffer.allocUnsafe(Math.min(Math.max(length, CHUNK_BYTES), this.size - offset));
    let filled = 0;
    while (filled < window.length) {
      const { bytesRead } = await this.#handle.read(
        window,
        filled,
        window.length - filled,
        offset + filled,
      );
      if (bytesRead === 0) throw new Error(`file shrank while reading at ${offset + filled}`);
      filled += bytesRead;
    }
    this.#window = window;
    this.#windowStart = offset;
    return window.subarray(0, length);
  }

  /** True when every byte from `offset` to the end is zero (zero-filled pages of a crash). */
  async zeroFrom(offset: number): Promise<boolean> {
    for (let at = offset; at < this.size; at += CHUNK_BYTES) {
      const bytes = await this.read(at, Math.min(CHUNK_BYTES, this.size - at));
      if (bytes.some((byte) => byte !== 0)) return false;
    }
    return true;
  }
}
