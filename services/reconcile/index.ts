/**
 * The reconcile machinery (STYLE 6; kubernetes sample-controller): an
 * Informer keeps a cache of a resource current by list + watch and calls a
 * handler that only enqueues a key; a WorkQueue runs the reconcile of each
 * key, deduplicated, single flight, with back-off. Every agent loop and every
 * clusterd controller runs on these two.
 */
export {
  Informer,
  type InformerOptions,
  type InformerSource,
  type InformerStats,
  type InformerWatch,
  type ListResult,
  type WatchEvent,
} from './informer.ts';
export { REAL_TIMERS, sleep, type Timers } from './timers.ts';
export {
  backoffDelay,
  TerminalError,
  WorkQueue,
  type WorkQueueOptions,
  type WorkQueueStats,
  type WorkResult,
} from './work-queue.ts';
