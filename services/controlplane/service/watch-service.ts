/**
 * Watches of cluster resources for agents, tools and browsers: the store's
 * ordered, resumable watch, limited to what a member may read (never tokens),
 * with keys relative to the control plane's root.
 */

import type {
  Caller,
  ResourceEvent,
  ResourceWatch,
  WatchRequest,
  WatchService,
} from '../../api/contracts.ts';
import { AmalgamError } from '../../core/errors.ts';
import type { Store } from '../../store/store.ts';
import { requireMember } from './authz.ts';
import { keys } from './keys.ts';

/** The resources a member may watch; tokens (secret hashes) are never among them. */
export const WATCHABLE_ROOTS = [
  'nodes/',
  'heartbeats/',
  'memory/',
  'devices/',
  'processes/',
] as const;
const MAX_PREFIX = 256;

function validate(request: WatchRequest): void {
  const { prefix, fromRevision } = request;
  if (
    typeof prefix !== 'string' ||
    prefix.length > MAX_PREFIX ||
    !WATCHABLE_ROOTS.some((root) => prefix.startsWith(root))
  ) {
    throw new AmalgamError(
      'INVALID_ARGUMENT',
      `prefix: must start with one of ${WATCHABLE_ROOTS.join(', ')}`,
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

export function createWatchService(store: Store): WatchService {
  return {
    open(caller: Caller, request: WatchRequest): ResourceWatch {
      requireMember(caller);
      validate(request);
      const options =
        request.fromRevision === undefined ? {} : { fromRevision: request.fromRevision };
      const watch = store.watch(keys.root + request.prefix, options);
      return {
        async *[Symbol.asyncIterator](): AsyncIterator<ResourceEvent> {
          for await (const ev of watch) {
            yield {
              type: ev.type,
              key: ev.kv.key.slice(keys.root.length),
              value: ev.type === 'put' ? JSON.parse(ev.kv.value) : null,
              revision: ev.revision,
            };
          }
        },
        close: () => watch.close(),
      };
    },
  };
}
