/**
 * How a watch event gets its value: the API view of the resource, built by
 * the same function as the GET of that resource. Each feature's `records.ts`
 * (the only place its records are parsed) exports one entry per watchable
 * root; watch-registry.ts lists them.
 */

/** Reads another store key (as a feature's records.ts names it) as raw JSON; undefined when absent. */
export type ReadRaw = (key: string) => Promise<string | undefined>;

export interface WatchView {
  /** A watchable root such as `nodes/`: every key under it is built by `view`. */
  root: string;
  /** The view of the record `raw` stored at `relativeKey`; may read a second key. */
  view(relativeKey: string, raw: string, read: ReadRaw): unknown | Promise<unknown>;
}

export type WatchViews = readonly WatchView[];
