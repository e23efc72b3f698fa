/**
 * The embedded store's log on disk: write-ahead log segments, and every
 * `snapshotEvery` records a snapshot that lets the older segments go.
 */
import { encodeSnapshot, segmentPath, writeSnapshot } from './data-dir.ts';
import type { Mvcc } from './mvcc.ts';
import { type StoreLogger, WalWriter } from './wal.ts';

export interface LogSettings {
  dataDir: string;
  snapshotEvery: number;
  logger: StoreLogger;
}

export class SnapshottingLog {
  readonly #settings: LogSettings;
  #wal: WalWriter;
  #recordsSinceSnapshot: number;
  #snapshotting: Promise<void> | undefined;

  /** Continues the log after record `lastIndex`, as recovery found it. */
  constructor(settings: LogSettings, lastIndex: number, recordsSinceSnapshot: number) {
    this.#settings = settings;
    this.#recordsSinceSnapshot = recordsSinceSnapshot;
    this.#wal = new WalWriter(segmentPath(settings.dataDir, lastIndex + 1), { create: true });
  }

  /** Appends an encoded record; resolves once it is durable. */
  append(record: Buffer): Promise<void> {
    return this.#wal.append(record);
  }

  /**
   * Record `index` was appended and `mvcc` is the state it leaves. Every
   * `snapshotEvery` records: capture that state, switch new records to a
   * segment that starts right after it, and once every earlier record is
   * durable write the snapshot and drop the old files.
   */
  appended(index: number, mvcc: Mvcc): void {
    this.#recordsSinceSnapshot++;
    if (this.#recordsSinceSnapshot < this.#settings.snapshotEvery || this.#snapshotting) return;
    const { dataDir, logger } = this.#settings;
    const body = encodeSnapshot(index, mvcc);
    const earlierDurable = this.#wal.close();
    this.#wal = new WalWriter(segmentPath(dataDir, index + 1), {
      create: true,
      after: earlierDurable,
    });
    this.#recordsSinceSnapshot = 0;
    this.#snapshotting = earlierDurable
      .then(() => writeSnapshot(dataDir, index, body))
      .catch((err: unknown) => {
        // Not fatal: the segments hold every record until a snapshot succeeds.
        logger.error({ err, index }, 'snapshot failed');
      })
      .finally(() => {
        this.#snapshotting = undefined;
      });
  }

  /** Closes the current segment (after its pending appends) and waits for a running snapshot. */
  async close(): Promise<void> {
    await this.#wal.close();
    await this.#snapshotting;
  }
}
