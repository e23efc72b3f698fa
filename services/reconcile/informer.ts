/**
 * Informer: a local cache of one kind of resource, kept current by list +
 * watch (the client-go informer, reduced to what amalgam needs).
 *
 * - Start: list, then watch from the list's revision + 1; when the source's
 *   list carries no revision, the watch is opened first and the list read
 *   after it, so no change falls between the two (a change seen twice is
 *   harmless: the cache is set, not added to). A watch "from now" is only as
 *   early as the server set it up; the resync covers that window.
 * - Every change of the cache calls `onChange(key, value, previous)`; a value
 *   equal to the cached one changes nothing. Handlers should only enqueue a
 *   key (WorkQueue): the cache can be read from them, never written.
 * - A watch that ends or fails is resumed from the last revision seen (its
 *   events are re-applied, which changes nothing), after a back-off that
 *   grows with consecutive failures. WATCH_COMPACTED (the history is gone)
 *   and WATCH_SLOW_CONSUMER (the server cut a watch this side read too
 *   slowly: replaying its backlog would overflow again): re-list, replacing
 *   the cache (keys missing from the list are deleted), then watch from the
 *   list's revision.
 * - Resync every `resyncMs`: re-list and call `onChange` for every key, so a
 *   level-based consumer recovers from anything a watch could have missed.
 */
import type { Logger } from 'pino';
import { REAL_TIMERS, sleep, type Timers } from './timers.ts';
import { backoffDelay } from './work-queue.ts';

export interface WatchEvent<T> {
  type: 'put' | 'delete';
  key: string;
  value: T | null;
  revision: number;
}

export interface InformerWatch<T> extends AsyncIterable<WatchEvent<T>> {
  close(): Promise<void>;
}

export interface ListResult<T> {
  items: Iterable<readonly [string, T]>;
  /** The store revision the list was read at, when the source knows it. */
  revision?: number;
}

export interface InformerSource<T> {
  /** True when `list` always returns its revision (then the watch starts after it). */
  revisioned?: boolean;
  list(): Promise<ListResult<T>>;
  /** Events with revision >= `fromRevision`; from now on when undefined. */
  watch(fromRevision?: number): InformerWatch<T>;
}

export interface InformerOptions<T> {
  name: string;
  source: InformerSource<T>;
  onChange: (key: string, value: T | null, previous: T | null) => void;
  /** Re-list and redeliver every key this often; 0: never. Default 0. */
  resyncMs?: number;
  /** Back-off between failed attempts. Default 200 ms .. 30 s. */
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** Whether an error means "re-list". Default: `code` WATCH_COMPACTED or WATCH_SLOW_CONSUMER. */
  isCompacted?: (err: unknown) => boolean;
  equals?: (a: T, b: T) => boolean;
  logger?: Logger;
  timers?: Timers;
}

export interface InformerStats {
  lists: number;
  watches: number;
  failures: number;
  /** Re-lists forced by the watch: its history compacted away, or cut as a slow consumer. */
  compactions: number;
  /** Of those, the watches the server cut because this side read too slowly. */
  slowConsumerCuts: number;
  events: number;
  items: number;
}

/** The codes after which resuming the watch cannot help: re-list. */
export const RELIST_CODES: readonly string[] = ['WATCH_COMPACTED', 'WATCH_SLOW_CONSUMER'];

const codeOf = (err: unknown): unknown =>
  typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined;

const compactedByCode = (err: unknown): boolean => RELIST_CODES.includes(codeOf(err) as string);

const jsonEquals = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);

export class Informer<T> {
  readonly name: string;
  private readonly cache = new Map<string, T>();
  private readonly counters = {
    lists: 0,
    watches: 0,
    failures: 0,
    compactions: 0,
    slowConsumerCuts: 0,
    events: 0,
  };
  private readonly syncWaiters: (() => void)[] = [];
  private watch: InformerWatch<T> | null = null;
  private loop: Promise<void> | null = null;
  private resyncHandle: unknown = null;
  /** The newest revision applied; a resumed watch starts there (re-applying it changes nothing). */
  private lastRevision: number | undefined;
  /** Events up to this revision are already in the cache (the list was read at it). */
  private skipThrough = 0;
  private needsList = true;
  private closed = false;
  private synced = false;
  private wakeSleep: (() => void) | null = null;

  constructor(private readonly options: InformerOptions<T>) {
    this.name = options.name;
  }

  start(): this {
    if (this.loop) return this;
    this.loop = this.run();
    this.scheduleResync();
    return this;
  }

  get(key: string): T | undefined {
    return this.cache.get(key);
  }

  entries(): [string, T][] {
    return [...this.cache.entries()];
  }

  get hasSynced(): boolean {
    return this.synced;
  }

  /** Resolves after the first successful list. */
  waitForSync(): Promise<void> {
    if (this.synced) return Promise.resolve();
    return new Promise((resolve) => this.syncWaiters.push(resolve));
  }

  stats(): InformerStats {
    return { ...this.counters, items: this.cache.size };
  }

  async close(): Promise<void> {
    this.closed = true;
    const timers = this.options.timers ?? REAL_TIMERS;
    if (this.resyncHandle !== null) timers.clearTimeout(this.resyncHandle);
    this.wakeSleep?.();
    await this.watch?.close().catch(() => {});
    await this.loop;
  }

  private async run(): Promise<void> {
    let failures = 0;
    while (!this.closed) {
      try {
        await this.listAndWatch(() => {
          failures = 0;
        });
        failures = 0; // a watch that ended cleanly is resumed at once
      } catch (err) {
        if (this.closed) break;
        failures += 1;
        this.counters.failures += 1;
        if ((this.options.isCompacted ?? compactedByCode)(err)) {
          this.counters.compactions += 1;
          if (codeOf(err) === 'WATCH_SLOW_CONSUMER') this.counters.slowConsumerCuts += 1;
          this.needsList = true;
          this.lastRevision = undefined;
        }
        const delay = backoffDelay(
          failures,
          this.options.baseDelayMs ?? 200,
          this.options.maxDelayMs ?? 30_000,
        );
        this.options.logger?.warn(
          { err, informer: this.name, failures, retryInMs: delay },
          'watch failed; resuming',
        );
        await sleep(delay, this.options.timers, (wake) => {
          this.wakeSleep = wake;
        });
      }
    }
  }

  /** One watch's life: (re-)list if needed, then apply events until it ends. */
  private async listAndWatch(onProgress: () => void): Promise<void> {
    if (this.lastRevision === undefined) this.needsList = true;
    const listing = this.needsList;
    const watch = listing ? await this.relist() : this.openWatch(this.lastRevision);
    if (listing) onProgress(); // a resumed watch proves nothing until an event arrives
    try {
      for await (const event of watch) {
        if (this.closed) break;
        this.apply(event);
        onProgress();
      }
    } finally {
      await watch.close().catch(() => {});
      if (this.watch === watch) this.watch = null;
    }
  }

  private openWatch(fromRevision: number | undefined): InformerWatch<T> {
    this.counters.watches += 1;
    const watch = this.options.source.watch(fromRevision);
    this.watch = watch;
    return watch;
  }

  /**
   * List and replace the cache, ordered with the watch so that no change
   * falls between them: with a list revision R, watch from R + 1; without
   * one, the watch is opened before the list is read.
   */
  private async relist(): Promise<InformerWatch<T>> {
    const early = this.options.source.revisioned ? null : this.openWatch(undefined);
    let listed: ListResult<T>;
    try {
      listed = await this.options.source.list();
    } catch (err) {
      await early?.close().catch(() => {});
      throw err;
    }
    this.counters.lists += 1;
    this.replace(listed.items, false);
    this.needsList = false;
    this.markSynced();
    this.skipThrough = listed.revision ?? 0;
    this.lastRevision = listed.revision;
    if (early) return early;
    return this.openWatch(listed.revision === undefined ? undefined : listed.revision + 1);
  }

  private apply(event: WatchEvent<T>): void {
    this.counters.events += 1;
    this.lastRevision = Math.max(this.lastRevision ?? 0, event.revision);
    if (event.revision <= this.skipThrough) return; // already in the list
    if (event.type === 'delete' || event.value === null) this.set(event.key, null, false);
    else this.set(event.key, event.value, false);
  }

  private replace(items: Iterable<readonly [string, T]>, redeliver: boolean): void {
    const seen = new Set<string>();
    for (const [key, value] of items) {
      seen.add(key);
      this.set(key, value, redeliver);
    }
    for (const key of [...this.cache.keys()]) if (!seen.has(key)) this.set(key, null, false);
  }

  private set(key: string, value: T | null, redeliver: boolean): void {
    const previous = this.cache.get(key) ?? null;
    if (value === null) {
      if (previous === null) return;
      this.cache.delete(key);
    } else {
      const equals = this.options.equals ?? jsonEquals;
      if (previous !== null && equals(previous, value) && !redeliver) return;
      this.cache.set(key, value);
    }
    try {
      this.options.onChange(key, value, previous);
    } catch (err) {
      this.options.logger?.error({ err, informer: this.name, key }, 'informer handler threw');
    }
  }

  private markSynced(): void {
    if (this.synced) return;
    this.synced = true;
    for (const resolve of this.syncWaiters.splice(0)) resolve();
  }

  private scheduleResync(): void {
    const every = this.options.resyncMs ?? 0;
    if (every <= 0 || this.closed) return;
    const timers = this.options.timers ?? REAL_TIMERS;
    this.resyncHandle = timers.setTimeout(() => {
      this.resyncHandle = null;
      void this.resync().finally(() => this.scheduleResync());
    }, every);
  }

  /** Re-list and redeliver every key; the watch goes on. */
  async resync(): Promise<void> {
    if (this.closed) return;
    try {
      const listed = await this.options.source.list();
      this.counters.lists += 1;
      if (this.closed) return;
      this.replace(listed.items, true);
      this.markSynced();
    } catch (err) {
      this.options.logger?.warn({ err, informer: this.name }, 'resync list failed');
    }
  }
}
