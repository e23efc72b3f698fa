/**
 * A running leader-only controller. Each one is an Informer feeding a
 * WorkQueue (services/reconcile) or a WorkQueue key that requeues itself;
 * it acts through the features' service functions, never the store.
 */
export interface Controller {
  /** Runs one reconcile pass now (tests, and the watch trigger); resolves to what changed. */
  reconcile(): Promise<number>;
  stop(): Promise<void>;
}
