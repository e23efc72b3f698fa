/**
 * An Informer's source (services/reconcile) over one prefix of the store:
 * list with its revision, watch from a revision, keys relative to the prefix
 * and values parsed by the feature's records.ts. Controllers get these from a
 * feature's service, never the store itself.
 */
import type { InformerSource, InformerWatch, WatchEvent } from '../../reconcile/index.ts';
import type { Store } from '../../store/store.ts';

export function storeSource<T>(
  store: Store,
  prefix: string,
  parse: (raw: string) => T,
): InformerSource<T> {
  const relative = (key: string) => key.slice(prefix.length);
  return {
    revisioned: true,
    async list() {
      const { kvs, revision } = await store.range(prefix);
      return { items: kvs.map((kv) => [relative(kv.key), parse(kv.value)] as const), revision };
    },
    watch(fromRevision?: number): InformerWatch<T> {
      const watch = store.watch(prefix, fromRevision === undefined ? {} : { fromRevision });
      return {
        async *[Symbol.asyncIterator](): AsyncIterator<WatchEvent<T>> {
          for await (const ev of watch) {
            const value = ev.type === 'put' ? parse(ev.kv.value) : null;
            yield { type: ev.type, key: relative(ev.kv.key), value, revision: ev.revision };
          }
        },
        close: () => watch.close(),
      };
    },
  };
}
