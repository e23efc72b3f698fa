/**
 * Watches of cluster resources for agents, tools and browsers: the store's
 * ordered, resumable watch, limited to what a member may read (never tokens),
 * with keys relative to the control plane's root and API views as values,
 * built by the same functions as GET (watch-registry.ts).
 */

import type { ResourceEvent, WatchRequest } from '../../api/contracts.ts';
import { AmalgamError } from '../../core/errors.ts';
import type { Store, WatchEvent } from '../../store/store.ts';
import { authorize } from './authz.ts';
import type { Caller, ResourceWatch, WatchService } from './contracts.ts';
import { keys, relativeKey } from './keys.ts';
import { WATCH_VIEWS } from './watch-registry.ts';
import type { ReadRaw, WatchView, WatchViews } from './watch-view.ts';

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

  constructor(store: Store, views: WatchViews = WATCH_VIEWS) {
    this.#store = store;
    this.#views = views;
    this.#read = async (key) => (await store.get(key))?.value;
  }

  /** The watchable roots, in registry order. */
  get roots(): string[] {
    return this.#views.map((v) => v.root);
  }

  open(caller: Caller, request: WatchRequest): ResourceWatch {
    authorize(caller, 'watchResources');
    validate(request, this.roots);
    const options =
      request.fromRevision === undefined ? {} : { fromRevision: request.fromRevision };
    const watch = this.#store.watch(keys.root + request.prefix, options);
    const toEvent = (ev: WatchEvent) => this.#toEvent(ev);
    return {
      async *[Symbol.asyncIterator](): AsyncIterator<ResourceEvent> {
        for await (const ev of watch) yield await toEvent(ev);
      },
      close: () => watch.close(),
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
