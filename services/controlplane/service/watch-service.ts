/**
 * Watches of cluster resources for agents, tools and browsers: the store's
 * ordered, resumable watch, limited to what a member may read (never tokens),
 * with keys relative to the control plane's root and API views as values,
 * built by the same functions as GET (watch-registry.ts).
 *
 * Bounded (clusterd config `limits`, limits.ts): at most `watchesPerCaller`
 * open watches per identity (node, admin, user) and `watchesTotal` in all on
 * this replica, else TOO_MANY_WATCHES; each watch's queue holds at most
 * `watchQueueEvents` events / `watchQueueBytes` bytes for a client that reads
 * slowly, else the watch is cut with WATCH_SLOW_CONSUMER (watch-queue.ts).
 * Metrics: `amalgam_watches_open{kind}` (kind: the watched root),
 * `amalgam_watches_cut_total{reason}`, `amalgam_watches_refused_total{scope}`.
 */

import type { Logger } from 'pino';
import { Counter, Gauge, Registry } from 'prom-client';
import type { ResourceEvent, WatchRequest } from '../../api/contracts.ts';
import { AmalgamError } from '../../core/errors.ts';
import type { Store, WatchEvent } from '../../store/store.ts';
import { DEFAULT_LIMITS, type LimitsConfig } from '../limits.ts';
import { authorize } from './authz.ts';
import type { Caller, ResourceWatch, WatchService } from './contracts.ts';
import { keys, relativeKey } from './keys.ts';
import { BoundedWatchQueue } from './watch-queue.ts';
import { WATCH_VIEWS } from './watch-registry.ts';
import type { ReadRaw, WatchView, WatchViews } from './watch-view.ts';

export type WatchLimits = Pick<
  LimitsConfig,
  'watchesPerCaller' | 'watchesTotal' | 'watchQueueEvents' | 'watchQueueBytes'
>;

export interface WatchServiceOptions {
  views?: WatchViews;
  limits?: Partial<WatchLimits>;
  /** Where the watch metrics go; default a registry of its own. */
  registry?: Registry;
  logger?: Logger;
}

/** The identity a watch counts against: `node:<name>`, `admin`, `user:<name>`... */
export function callerKey(caller: Caller): string {
  const named = caller as { kind: string; name?: unknown };
  return typeof named.name === 'string' ? `${named.kind}:${named.name}` : named.kind;
}

function watchMetrics(registry: Registry) {
  const get = <T>(name: string, create: () => T): T =>
    (registry.getSingleMetric(name) as T | undefined) ?? create();
  return {
    open: get(
      'amalgam_watches_open',
      () =>
        new Gauge({
          name: 'amalgam_watches_open',
          help: 'Watches open on this replica, by watched root (nodes, heartbeats, memory, devices, processes).',
          labelNames: ['kind'] as const,
          registers: [registry],
        }),
    ),
    cut: get(
      'amalgam_watches_cut_total',
      () =>
        new Counter({
          name: 'amalgam_watches_cut_total',
          help: 'Watches the server ended, by reason (slow_consumer: the queue overflowed).',
          labelNames: ['reason'] as const,
          registers: [registry],
        }),
    ),
    refused: get(
      'amalgam_watches_refused_total',
      () =>
        new Counter({
          name: 'amalgam_watches_refused_total',
          help: 'Watches refused with TOO_MANY_WATCHES, by the cap hit (caller or total).',
          labelNames: ['scope'] as const,
          registers: [registry],
        }),
    ),
  };
}

const MAX_PREFIX = 256;

function validate(request: WatchRequest, roots: readonly string[]): void {
  const { prefix, fromRevision } = request;
  if (
    typeof prefix !== 'string' ||
    prefix.length > MAX_PREFIX ||
    !roots.some((root) => prefix.startsWith(root))
  ) {
    throw new AmalgamError(
      'INVALID_ARGUMENT',
      `prefix: must start with one of ${roots.join(', ')}`,
      {
        field: 'prefix',
      },
    );
  }
  if (fromRevision !== undefined && (!Number.isSafeInteger(fromRevision) || fromRevision < 1)) {
    throw new AmalgamError('INVALID_ARGUMENT', 'fromRevision: an integer >= 1', {
      field: 'fromRevision',
    });
  }
}

export class ResourceWatchService implements WatchService {
  readonly #store: Store;
  readonly #views: WatchViews;
  readonly #read: ReadRaw;
  readonly #limits: WatchLimits;
  readonly #metrics: ReturnType<typeof watchMetrics>;
  readonly #logger: Logger | undefined;
  /** Open watches per caller key, and in all. */
  readonly #open = new Map<string, number>();
  #total = 0;

  constructor(store: Store, options: WatchServiceOptions = {}) {
    this.#store = store;
    this.#views = options.views ?? WATCH_VIEWS;
    this.#read = async (key) => (await store.get(key))?.value;
    this.#limits = { ...DEFAULT_LIMITS, ...options.limits };
    this.#metrics = watchMetrics(options.registry ?? new Registry());
    this.#logger = options.logger;
  }

  /** The watchable roots, in registry order. */
  get roots(): string[] {
    return this.#views.map((v) => v.root);
  }

  /** Open watches of `caller` on this replica (all of them without one). */
  openCount(caller?: Caller): number {
    return caller === undefined ? this.#total : (this.#open.get(callerKey(caller)) ?? 0);
  }

  open(caller: Caller, request: WatchRequest): ResourceWatch {
    authorize(caller, 'watchResources');
    validate(request, this.roots);
    const release = this.#admit(caller, request.prefix);
    const options =
      request.fromRevision === undefined ? {} : { fromRevision: request.fromRevision };
    let queue: BoundedWatchQueue;
    try {
      const watch = this.#store.watch(keys.root + request.prefix, options);
      queue = new BoundedWatchQueue(
        watch,
        { maxEvents: this.#limits.watchQueueEvents, maxBytes: this.#limits.watchQueueBytes },
        (queued) => {
          this.#metrics.cut.inc({ reason: 'slow_consumer' });
          this.#logger?.warn(
            {
              code: 'WATCH_SLOW_CONSUMER',
              caller: callerKey(caller),
              prefix: request.prefix,
              ...queued,
            },
            'watch cut: its client reads too slowly',
          );
          release();
        },
      );
    } catch (err) {
      release();
      throw err;
    }
    const toEvent = (ev: WatchEvent) => this.#toEvent(ev);
    return {
      async *[Symbol.asyncIterator](): AsyncIterator<ResourceEvent> {
        for await (const ev of queue) yield await toEvent(ev);
      },
      close: async () => {
        release();
        await queue.close();
      },
    };
  }

  /** Counts a new watch of `caller`, or refuses it; returns its (idempotent) release. */
  #admit(caller: Caller, prefix: string): () => void {
    const key = callerKey(caller);
    const mine = this.#open.get(key) ?? 0;
    const { watchesPerCaller, watchesTotal } = this.#limits;
    const scope =
      mine >= watchesPerCaller ? 'caller' : this.#total >= watchesTotal ? 'total' : undefined;
    if (scope !== undefined) {
      const limit = scope === 'caller' ? watchesPerCaller : watchesTotal;
      this.#metrics.refused.inc({ scope });
      this.#logger?.warn(
        { code: 'TOO_MANY_WATCHES', caller: key, scope, limit, prefix },
        'watch refused: too many open watches',
      );
      throw new AmalgamError('TOO_MANY_WATCHES', `${scope} limit ${limit}`, { scope, limit });
    }
    const kind = prefix.slice(0, prefix.indexOf('/'));
    this.#open.set(key, mine + 1);
    this.#total += 1;
    this.#metrics.open.inc({ kind });
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.#open.get(key) ?? 1) - 1;
      if (left === 0) this.#open.delete(key);
      else this.#open.set(key, left);
      this.#total -= 1;
      this.#metrics.open.dec({ kind });
    };
  }

  async #toEvent(ev: WatchEvent): Promise<ResourceEvent> {
    const key = relativeKey(ev.kv.key);
    const value =
      ev.type === 'put' ? await this.#viewFor(key).view(key, ev.kv.value, this.#read) : null;
    return { type: ev.type, key, value, revision: ev.revision };
  }

  #viewFor(key: string): WatchView {
    const entry = this.#views.find((v) => key.startsWith(v.root));
    // The prefix was checked against the same roots: a key outside them is a bug.
    if (!entry) throw new Error(`no watch view for ${key}`);
    return entry;
  }
}
