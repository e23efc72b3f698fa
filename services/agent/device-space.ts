/**
 * The agent's side of the network device space:
 *
 * - publishes this machine's inventory (`devices.report`) whenever it differs
 *   from what was last acknowledged, and on every resync;
 * - follows the control plane with two Informers of services/reconcile
 *   (`devices/`, each key a node's `DeviceView[]`; `heartbeats/`, each a
 *   node's liveness with its page server endpoint; each re-listed every
 *   resync), whose changes enqueue one key on a WorkQueue that rewrites the
 *   two files of the native data path (device-files-writer.ts);
 * - when configured (`remotedev.mount`), runs and supervises remotedev-fuse
 *   on that directory (remotedev-supervisor.ts);
 * - when configured (`remotedev.localdev`), keeps `<localdev>/<dev>` symlinks
 *   to this machine's own devices (localdev-links.ts).
 *
 * When clusterd cannot be reached, the files keep their last content: a
 * control-plane outage does not take exported devices away.
 */
import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Logger } from 'pino';
import type {
  DeviceInventoryItem,
  DeviceView,
  NodeLiveness,
  PageServerEndpoint,
} from '../api/contracts.ts';
import type { AmalgamClient } from '../client/index.ts';
import { Informer, WorkQueue } from '../reconcile/index.ts';
import { DeviceFilesWriter } from './device-files-writer.ts';
import { LocaldevLinks } from './localdev-links.ts';
import type { AgentMetrics } from './metrics.ts';
import { RemotedevSupervisor } from './remotedev-supervisor.ts';
import { watchKeys } from './watch-source.ts';

export interface RemotedevConfig {
  /** Where remotedev-fuse mounts the cluster's devices (`/remotedev`); absent: no mount. */
  mount?: string;
  /** Where this machine's own devices get symlinks (`/localdev`); absent: none. */
  localdev?: string;
  /** The remotedev-fuse binary; default native/build/remotedev-fuse. */
  binary?: string;
  /** More arguments for remotedev-fuse (e.g. `--timeout-ms 2000`). */
  extraArgs?: string[];
}

export interface DeviceSpaceOptions {
  node: string;
  client: AmalgamClient;
  logger: Logger;
  /** Where the two files live. */
  stateDir: string;
  remotedev?: RemotedevConfig;
  /** The node's TLS files for remotedev-fuse; absent: `--plaintext-loopback`. */
  tls?: { certFile: string; keyFile: string; caFile: string };
  resyncMs: number;
  metrics?: AgentMetrics;
  /** The page server's file changed: the agent sends its page server SIGHUP. */
  onPageServerDevicesChanged(): void;
}

export interface DeviceSpace {
  /** The page server's `--devices` file (exists from the start). */
  devicesFile: string;
  treeFile: string;
  /** This machine's inventory as just probed: published when it changed. */
  inventory(items: DeviceInventoryItem[]): void;
  /** The running remotedev-fuse, if any (tests, status). */
  mount(): { pid: number; dir: string } | null;
  close(): Promise<void>;
}

const sameEndpoint = (a: PageServerEndpoint | null, b: PageServerEndpoint | null): boolean =>
  a === null || b === null ? a === b : a.address === b.address && a.tls === b.tls;

/** The device views as `devices/<node>` keys, as the watch brings them. */
function byNode(devices: DeviceView[]): [string, DeviceView[]][] {
  const out = new Map<string, DeviceView[]>();
  for (const d of devices)
    out.set(`devices/${d.node}`, [...(out.get(`devices/${d.node}`) ?? []), d]);
  return [...out.entries()];
}

type FilesKey = 'files' | 'resync';

class DeviceSpaceAgent implements DeviceSpace {
  readonly devicesFile: string;
  readonly treeFile: string;
  readonly #o: DeviceSpaceOptions;
  readonly #logger: Logger;
  readonly #files: DeviceFilesWriter;
  readonly #fuse: RemotedevSupervisor | null;
  readonly #localdev: LocaldevLinks | null;
  /** `devices/<node>` -> that node's devices (only this node's without a mount). */
  readonly #devices: Informer<DeviceView[]>;
  /** `heartbeats/<node>` -> its liveness; only with a mount (every node's endpoint). */
  readonly #beats: Informer<NodeLiveness> | null;
  /** 'files' rewrites the two files from the caches; 'resync' is the periodic pass. */
  readonly #queue: WorkQueue<FilesKey>;
  #closed = false;
  #lastInventory: DeviceInventoryItem[] | undefined;
  #published: string | undefined;
  #publishing = false;

  constructor(options: DeviceSpaceOptions) {
    this.#o = options;
    this.#logger = options.logger.child({ part: 'devices' });
    this.devicesFile = join(options.stateDir, 'pageserver-devices');
    this.treeFile = join(options.stateDir, 'remotedev-tree');
    this.#fuse = this.#remotedevSupervisor();
    this.#localdev = options.remotedev?.localdev
      ? new LocaldevLinks(resolve(options.remotedev.localdev), this.#logger)
      : null;
    this.#files = new DeviceFilesWriter({
      node: options.node,
      devicesFile: this.devicesFile,
      treeFile: this.treeFile,
      logger: this.#logger,
      ...(options.metrics ? { metrics: options.metrics } : {}),
      onDevicesChanged: () => options.onPageServerDevicesChanged(),
      onTreeChanged: () => this.#fuse?.hup(),
    });
    this.#queue = new WorkQueue<FilesKey>({
      name: 'device-files',
      worker: (key) => (key === 'files' ? this.#writeFiles() : this.#resync()),
      logger: this.#logger,
    });
    this.#devices = this.#deviceInformer();
    this.#beats = this.#fuse ? this.#liveness() : null;
  }

  #remotedevSupervisor(): RemotedevSupervisor | null {
    const { remotedev, tls, metrics } = this.#o;
    if (!remotedev?.mount) return null;
    return new RemotedevSupervisor({
      mountDir: resolve(remotedev.mount),
      treeFile: this.treeFile,
      ...(remotedev.binary ? { binary: remotedev.binary } : {}),
      ...(remotedev.extraArgs ? { extraArgs: remotedev.extraArgs } : {}),
      ...(tls ? { tls } : {}),
      ...(metrics ? { metrics } : {}),
      logger: this.#logger,
      tree: () => this.#files.tree,
    });
  }

  /**
   * Every node's devices when this machine mounts the tree; else only
   * `devices/<node>`: an agent without a mount needs no one else's.
   */
  #deviceInformer(): Informer<DeviceView[]> {
    const { client, node } = this.#o;
    const all = this.#fuse !== null;
    const prefix = all ? 'devices/' : `devices/${node}`;
    return new Informer<DeviceView[]>({
      name: 'devices',
      source: {
        list: async () => ({
          items: byNode(await (all ? client.devices.list() : client.devices.list(node))),
        }),
        watch: (from) => watchKeys(client, prefix, (k) => all || k === prefix, from),
      },
      onChange: () => this.#queue.add('files'),
      resyncMs: this.#o.resyncMs,
      baseDelayMs: 500,
      logger: this.#logger,
    });
  }

  /**
   * Every node's liveness, for its page server endpoint. A node that the
   * list no longer names loses its endpoint; one whose heartbeat lapsed keeps
   * it (its files stay, their I/O fails with EIO).
   */
  #liveness(): Informer<NodeLiveness> {
    const { client } = this.#o;
    return new Informer<NodeLiveness>({
      name: 'heartbeats',
      source: {
        list: async () => {
          const nodes = await client.nodes.list();
          this.#keepEndpointsOf(new Set(nodes.map((n) => n.name)));
          return { items: nodes.map((n) => [`heartbeats/${n.name}`, n] as const) };
        },
        watch: (from) => watchKeys(client, 'heartbeats/', () => true, from),
      },
      onChange: () => this.#queue.add('files'),
      // A heartbeat that only moves lastHeartbeatAt changes nothing here.
      equals: (a, b) => sameEndpoint(a.pageserver ?? null, b.pageserver ?? null),
      resyncMs: this.#o.resyncMs,
      baseDelayMs: 500,
      logger: this.#logger,
    });
  }

  #keepEndpointsOf(names: Set<string>): void {
    const { endpoints } = this.#files;
    for (const name of [...endpoints.keys()]) if (!names.has(name)) endpoints.delete(name);
  }

  async start(): Promise<void> {
    await mkdir(this.#o.stateDir, { recursive: true });
    await this.#files.init();
    this.#devices.start();
    this.#beats?.start();
    this.#queue.addAfter('resync', this.#o.resyncMs);
    await this.#fuse?.start();
  }

  inventory(items: DeviceInventoryItem[]): void {
    this.#lastInventory = items;
    this.#o.metrics?.devices({ inventoried: items.length });
    this.#localdev?.relink(items);
    void this.#publish(items);
  }

  mount(): { pid: number; dir: string } | null {
    return this.#fuse?.mount() ?? null;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.all([this.#devices.close(), this.#beats?.close()]);
    await this.#queue.close();
    await this.#fuse?.close();
    await this.#localdev?.settled();
  }

  // ---- the control plane's view, from the two caches into the files ----

  /** Level based: the files from what the caches hold now (the last known state). */
  async #writeFiles(): Promise<void> {
    const { devicesByNode, endpoints } = this.#files;
    devicesByNode.clear();
    for (const [key, views] of this.#devices.entries())
      devicesByNode.set(key.slice('devices/'.length), views);
    for (const [key, liveness] of this.#beats?.entries() ?? []) {
      const name = key.slice('heartbeats/'.length);
      if (liveness.pageserver) endpoints.set(name, liveness.pageserver);
    }
    await this.#files.render();
  }

  /** The periodic pass: resolve host names afresh, publish the inventory again. */
  async #resync(): Promise<{ requeueAfterMs: number }> {
    this.#files.forgetAddresses();
    this.#queue.add('files');
    if (this.#lastInventory !== undefined) void this.#publish(this.#lastInventory, true);
    return { requeueAfterMs: this.#o.resyncMs * (0.9 + Math.random() * 0.2) };
  }

  // ---- this machine's inventory ----

  /** The answer is not applied: the `devices/` watch brings the same change. */
  async #publish(items: DeviceInventoryItem[], force = false): Promise<void> {
    const text = JSON.stringify(items);
    if ((!force && text === this.#published) || this.#publishing || this.#closed) return;
    this.#publishing = true;
    try {
      await this.#o.client.devices.report(this.#o.node, items);
      if (text !== this.#published)
        this.#logger.info({ devices: items.length }, 'device inventory published');
      this.#published = text;
    } catch (err) {
      this.#published = undefined;
      this.#logger.warn({ err }, 'cannot publish the device inventory; the next probe retries');
    } finally {
      this.#publishing = false;
    }
  }
}

export async function startDeviceSpace(options: DeviceSpaceOptions): Promise<DeviceSpace> {
  const space = new DeviceSpaceAgent(options);
  await space.start();
  return space;
}
