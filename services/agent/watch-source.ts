/**
 * The watch half of an Informer source over the control plane: the events of
 * `prefix` whose key `keep` accepts, from `fromRevision` on (from now when
 * undefined). A watch prefix is a string prefix (`nodes/a` also matches
 * `nodes/ab`), so a loop that follows one key says which keys are its own.
 */
import type { ResourceEvent } from '../api/contracts.ts';
import type { InformerWatch, WatchEvent } from '../reconcile/index.ts';

interface Watchable {
  watch(options: {
    prefix: string;
    fromRevision?: number;
    retryForMs?: number;
  }): AsyncIterable<ResourceEvent> & { close(): Promise<void> };
}

export function watchKeys<T>(
  client: Watchable,
  prefix: string,
  keep: (key: string) => boolean,
  fromRevision: number | undefined,
): InformerWatch<T> {
  const watch = client.watch({
    prefix,
    retryForMs: 60_000,
    ...(fromRevision === undefined ? {} : { fromRevision }),
  });
  return {
    async *[Symbol.asyncIterator]() {
      for await (const event of watch) if (keep(event.key)) yield event as WatchEvent<T>;
    },
    close: () => watch.close(),
  };
}
