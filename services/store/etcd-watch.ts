/**
 * An etcd watch as a WatchStream (the same queue the embedded store uses).
 * The etcd3 watch manager reconnects and resumes from the last revision by
 * itself; this adds hiding of internal keys and a clear WATCH_COMPACTED.
 */
import type { Etcd3, IWatchResponse } from 'etcd3';
import { Range as EtcdRange } from 'etcd3';
import { AmalgamError } from '../core/errors.ts';
import { fromEtcdKv, prefixRange } from './etcd-txn.ts';
import type { WatchEvent } from './store.ts';
import { INTERNAL_PREFIX } from './validate.ts';
import { WatchStream } from './watch-stream.ts';

/** What a watch asks its store when it fails: was its start revision compacted? */
export interface CompactionProbe {
  /** True when `revision` is older than the compaction point. */
  isCompacted(revision: number): Promise<boolean>;
}

export class EtcdWatch extends WatchStream {
  private watcher: Awaited<ReturnType<ReturnType<Etcd3['watch']>['create']>> | undefined;
  private closing = false;
  /** Where this watch would resume: after the last event it received. */
  private nextRevision: number | undefined;
  /** Resolves when the watch ends, for whatever reason. */
  readonly done: Promise<void>;

  constructor(
    private readonly probe: CompactionProbe,
    client: Etcd3,
    prefix: string,
    fromRevision: number | undefined,
  ) {
    let resolveDone!: () => void;
    super(() => {
      resolveDone();
      void this.cancelWatcher();
    });
    this.done = new Promise((resolve) => {
      resolveDone = resolve;
    });
    this.nextRevision = fromRevision;
    const bounds = prefixRange(prefix);
    let builder = client.watch().inRange(new EtcdRange(bounds.key, bounds.range_end));
    if (fromRevision !== undefined) builder = builder.startRevision(String(fromRevision));
    builder.create().then(
      (watcher) => {
        this.watcher = watcher;
        watcher.on('data', (res: IWatchResponse) => this.onData(res));
        watcher.on('error', (err: Error) => void this.onError(err));
        if (this.closing) void watcher.cancel();
      },
      (err: unknown) => void this.onError(err as Error),
    );
  }

  private onData(res: IWatchResponse): void {
    const events: WatchEvent[] = [];
    for (const ev of res.events) {
      if (ev.kv.key.toString().startsWith(INTERNAL_PREFIX)) continue;
      const kv = fromEtcdKv(ev.kv);
      this.nextRevision = kv.modRevision + 1;
      events.push({ type: ev.type === 'Delete' ? 'delete' : 'put', kv, revision: kv.modRevision });
    }
    this.push(events);
  }

  private async onError(err: Error): Promise<void> {
    if (this.closing) return;
    // etcd cancels a watch whose start revision was compacted; say so plainly.
    try {
      const from = this.nextRevision ?? 1;
      if (/compact/i.test(err.message) || (await this.probe.isCompacted(from))) {
        this.fail(new AmalgamError('WATCH_COMPACTED', `revision ${from}`, { fromRevision: from }));
        return;
      }
    } catch (probeErr) {
      this.fail(probeErr);
      return;
    }
    this.fail(err);
  }

  private async cancelWatcher(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    await this.watcher?.cancel().catch(() => {});
  }
}
