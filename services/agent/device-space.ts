/**
 * The agent's side of the network device space:
 *
 * - publishes this machine's inventory (`devices.report`) whenever it differs
 *   from what was last acknowledged, and on every resync;
 * - follows the control plane (watches of `devices/` - each event a node's
 *   `DeviceView[]` - and `heartbeats/` - each a node's liveness with its page
 *   server endpoint - plus a full re-list every resync) and keeps the two files
 *   of the native data path current (device-files-writer.ts);
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
  PageServerEndpoint,
  ResourceEvent,
} from '../api/contracts.ts';
import type { AmalgamClient } from '../client/index.ts';
import { closableTimers } from './closable-timers.ts';
import { DeviceFilesWriter } from './device-files-writer.ts';
import { LocaldevLinks } from './localdev-links.ts';
import type { AgentMetrics } from './metrics.ts';
import { backoffMs } from './page-server-decision.ts';
import { RemotedevSupervisor } from './remotedev-supervisor.ts';

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

/** The liveness part of a node (`heartbeats/<name>` events): its page server endpoint. */
type Liveness = { pageserver?: PageServerEndpoint | null } | null;

const sameEndpoint = (a: PageServerEndpoint | undefined, b: PageServerEndpoint): boolean =>
  a !== undefined && a.address === b.address && a.tls === b.tls;

class DeviceSpaceAgent implements DeviceSpace {
  readonly devicesFile: string;
  readonly treeFile: string;
  readonly #o: DeviceSpaceOptions;
  readonly #logger: Logger;
  readonly #files: DeviceFilesWriter;
  readonly #fuse: RemotedevSupervisor | null;
  readonly #localdev: LocaldevLinks | null;
  readonly #timers: ReturnType<typeof closableTimers>;
  readonly #watches: { close(): Promise<void> }[] = [];
  #closed = false;
  #refreshFailures = 0;
  /**
   * `devices/` events applied so far: a list or a report answer that was in
   * flight while one came may be older than it, and must not overwrite it.
   */
  #deviceEvents = 0;
  #lastInventory: DeviceInventoryItem[] | undefined;
  #published: string | undefined;
  #publishing = false;

  constructor(options: DeviceSpaceOptions) {
    this.#o = options;
    this.#logger = options.logger.child({ part: 'devices' });
    this.devicesFile = join(options.stateDir, 'pageserver-devices');
    this.treeFile = join(options.stateDir, 'remotedev-tree');
    this.#timers = closableTimers(() => this.#closed);
    const { remotedev } = options;
    this.#fuse = remotedev?.mount
      ? new RemotedevSupervisor({
          mountDir: resolve(remotedev.mount),
          treeFile: this.treeFile,
          ...(remotedev.binary ? { binary: remotedev.binary } : {}),
          ...(remotedev.extraArgs ? { extraArgs: remotedev.extraArgs } : {}),
          ...(options.tls ? { tls: options.tls } : {}),
          ...(options.metrics ? { metrics: options.metrics } : {}),
          logger: this.#logger,
          tree: () => this.#files.tree,
        })
      : null;
    this.#localdev = remotedev?.localdev
      ? new LocaldevLinks(resolve(remotedev.localdev), this.#logger)
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
  }

  async start(): Promise<void> {
    await mkdir(this.#o.stateDir, { recursive: true });
    await this.#files.init();
    void this.#follow('devices/');
    if (this.#fuse) void this.#follow('heartbeats/');
    this.#timers.later(this.#o.resyncMs, () => this.#resync());
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
    this.#timers.clear();
    await Promise.all(this.#watches.map((w) => w.close().catch(() => {})));
    await this.#fuse?.close();
    await this.#localdev?.settled();
  }

  // ---- the control plane's view: a full list, then watch events ----

  async #refresh(why: string): Promise<void> {
    const { client, node } = this.#o;
    const all = this.#fuse !== null; // without a mount only this node's own devices matter
    try {
      const seen = this.#deviceEvents;
      const [devices, nodes] = await Promise.all([
        all ? client.devices.list() : client.devices.list(node),
        all ? client.nodes.list() : Promise.resolve([]),
      ]);
      if (this.#deviceEvents !== seen)
        return this.#timers.later(0, () => void this.#refresh('raced a watch event'));
      this.#files.devicesByNode.clear();
      for (const d of devices) {
        const list = this.#files.devicesByNode.get(d.node) ?? [];
        list.push(d);
        this.#files.devicesByNode.set(d.node, list);
      }
      if (all) this.#setEndpoints(nodes);
      this.#refreshFailures = 0;
      await this.#files.render();
    } catch (err) {
      this.#refreshFailures++;
      this.#logger.warn({ err, why }, 'cannot read the device space; keeping the last files');
      this.#timers.later(
        backoffMs(this.#refreshFailures, 500, 30_000),
        () => void this.#refresh('retry'),
      );
    }
  }

  #setEndpoints(nodes: { name: string; pageserver?: PageServerEndpoint | null }[]): void {
    const { endpoints } = this.#files;
    const names = new Set(nodes.map((n) => n.name));
    for (const n of nodes) if (n.pageserver) endpoints.set(n.name, n.pageserver);
    for (const name of [...endpoints.keys()]) if (!names.has(name)) endpoints.delete(name);
  }

  /**
   * `devices/` and `heartbeats/` (every node's endpoint) when this machine
   * mounts the tree; else only `devices/<node>`: an agent without a mount does
   * not hear every heartbeat of the cluster.
   */
  async #follow(root: 'devices/' | 'heartbeats/', failures = 0): Promise<void> {
    if (this.#closed) return;
    const prefix = root === 'devices/' && !this.#fuse ? `${root}${this.#o.node}` : root;
    const watch = this.#o.client.watch({ prefix, retryForMs: 60_000 });
    this.#watches.push(watch);
    try {
      if (root === 'devices/') await this.#refresh('watch opened');
      for await (const event of watch) {
        failures = 0;
        this.#apply(root, event);
      }
    } catch (err) {
      if (!this.#closed) this.#logger.warn({ err, prefix }, 'a device-space watch ended');
    }
    if (this.#closed) return;
    this.#timers.later(
      backoffMs(failures + 1, 500, 30_000),
      () => void this.#follow(root, failures + 1),
    );
  }

  #apply(root: 'devices/' | 'heartbeats/', event: ResourceEvent): void {
    const name = event.key.slice(root.length);
    if (!this.#fuse && name !== this.#o.node) return;
    if (root === 'devices/') {
      this.#deviceEvents++;
      if (event.type === 'delete' || event.value === null) this.#files.devicesByNode.delete(name);
      else this.#files.devicesByNode.set(name, event.value as DeviceView[]);
      void this.#files.render();
      return;
    }
    const endpoint = event.type === 'put' ? (event.value as Liveness)?.pageserver : undefined;
    if (endpoint && !sameEndpoint(this.#files.endpoints.get(name), endpoint)) {
      this.#files.endpoints.set(name, endpoint);
      void this.#files.render();
    }
  }

  #resync(): void {
    this.#files.forgetAddresses();
    void this.#refresh('resync');
    if (this.#lastInventory !== undefined) void this.#publish(this.#lastInventory, true);
    this.#timers.later(this.#o.resyncMs * (0.9 + Math.random() * 0.2), () => this.#resync());
  }

  // ---- this machine's inventory ----

  async #publish(items: DeviceInventoryItem[], force = false): Promise<void> {
    const text = JSON.stringify(items);
    if ((!force && text === this.#published) || this.#publishing || this.#closed) return;
    this.#publishing = true;
    try {
      const seen = this.#deviceEvents;
      const views = await this.#o.client.devices.report(this.#o.node, items);
      if (text !== this.#published)
        this.#logger.info({ devices: items.length }, 'device inventory published');
      this.#published = text;
      // The watch brings the same change; the answer only saves waiting for it.
      if (this.#deviceEvents === seen) {
        this.#files.devicesByNode.set(this.#o.node, views);
        void this.#files.render();
      }
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
