/**
 * The agent's side of the network device space:
 *
 * - publishes this machine's inventory (`devices.report`) whenever it differs
 *   from what was last acknowledged, and on every resync;
 * - follows the control plane (a watch of `devices/` and `heartbeats/`, plus a
 *   full re-list every resync) and keeps the two files of the native data path
 *   current (device-files.ts): the page server's `--devices` file and
 *   remotedev-fuse's `--tree` file, each replaced atomically (a temp file and
 *   a rename) and followed by a SIGHUP to the process that reads it;
 * - when configured (`remotedev.mount`), runs remotedev-fuse on that directory
 *   and supervises it: a daemon that exits is restarted with exponential
 *   back-off after its stale mount is taken down; on close it is stopped and
 *   the directory unmounted;
 * - when configured (`remotedev.localdev`), keeps `<localdev>/<dev>` symlinks
 *   to this machine's own devices (only symlinks there are ever removed).
 *
 * When clusterd cannot be reached, the files keep their last content: a
 * control-plane outage does not take exported devices away.
 */
import { randomUUID } from 'node:crypto';
import { lookup } from 'node:dns/promises';
import {
  lstat,
  mkdir,
  readdir,
  readlink,
  rename,
  symlink,
  unlink,
  writeFile,
} from 'node:fs/promises';
import { isIP } from 'node:net';
import { join, resolve } from 'node:path';
import type { Logger } from 'pino';
import type { DeviceInventoryItem, DeviceView, PageServerEndpoint } from '../api/contracts.ts';
import type { AmalgamClient } from '../client/index.ts';
import type { DeviceRecord, DeviceTable } from '../core/devices.ts';
import { closableTimers } from './closable-timers.ts';
import {
  endpointHost,
  localdevLinks,
  pageServerDevicesFile,
  treeFile,
  withAddress,
} from './device-files.ts';
import type { AgentMetrics } from './metrics.ts';
import { backoffMs } from './page-server-decision.ts';
import { type RunningRemotedev, startRemotedev, unmount } from './remotedev-process.ts';

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

/**
 * No SIGHUP in a daemon's first half second. remotedev-fuse now holds its
 * signals from the start of main, so this is only a guard for a build that
 * installs its handler after `mounted` (a SIGHUP then would kill it; the
 * supervisor would restart it, but a reload is cheaper).
 */
const FUSE_SIGHUP_GRACE_MS = 500;
/** A daemon that ran this long starts its back-off afresh. */
const FUSE_STABLE_MS = 10_000;

async function writeAtomically(file: string, text: string): Promise<void> {
  const temp = `${file}.${process.pid}.${randomUUID().slice(0, 8)}.tmp`;
  await writeFile(temp, text, { mode: 0o644 });
  await rename(temp, file);
}

/** Lines that are not comments. */
const lineCount = (text: string): number =>
  text.split('\n').filter((l) => l !== '' && !l.startsWith('#')).length;

function viewsOfTable(table: DeviceTable): DeviceView[] {
  return Object.values(table.devices).map((d: DeviceRecord) => ({
    ...d,
    node: table.node,
    updatedAt: new Date(d.updatedAt).toISOString(),
  }));
}

const sameEndpoint = (a: PageServerEndpoint | undefined, b: PageServerEndpoint): boolean =>
  a !== undefined && a.address === b.address && a.tls === b.tls;

export async function startDeviceSpace(options: DeviceSpaceOptions): Promise<DeviceSpace> {
  const { client, node } = options;
  const logger = options.logger.child({ part: 'devices' });
  await mkdir(options.stateDir, { recursive: true });
  const devicesFile = join(options.stateDir, 'pageserver-devices');
  const tree = join(options.stateDir, 'remotedev-tree');
  const mountDir = options.remotedev?.mount ? resolve(options.remotedev.mount) : undefined;
  const localdevDir = options.remotedev?.localdev ? resolve(options.remotedev.localdev) : undefined;

  /** Every device the control plane knows, by node. */
  const devicesByNode = new Map<string, DeviceView[]>();
  /** Each node's last published page server (kept when its heartbeat lapses). */
  const endpoints = new Map<string, PageServerEndpoint>();
  let written = { devices: '', tree: '' };
  // Both files exist before anything reads them: empty until the control plane answers.
  written = { devices: pageServerDevicesFile(node, []), tree: treeFile([], endpoints) };
  await Promise.all([
    writeAtomically(devicesFile, written.devices),
    writeAtomically(tree, written.tree),
  ]);

  let closed = false;
  const { later, clear: clearTimers } = closableTimers(() => closed);

  // ---- endpoints as addresses: a host name is resolved here, once per resync ----
  const addresses = new Map<string, string>();
  async function resolved(): Promise<Map<string, PageServerEndpoint>> {
    const out = new Map<string, PageServerEndpoint>();
    for (const [name, endpoint] of endpoints) {
      const host = endpointHost(endpoint.address);
      if (isIP(host) !== 0) {
        out.set(name, endpoint);
        continue;
      }
      let ip = addresses.get(host);
      if (ip === undefined) {
        try {
          ip = (await lookup(host)).address;
          addresses.set(host, ip);
        } catch (err) {
          logger.warn(
            { err, node: name, host },
            "cannot resolve a page server's host; its devices wait",
          );
          continue;
        }
      }
      out.set(name, { ...endpoint, address: withAddress(endpoint.address, ip) });
    }
    return out;
  }

  // ---- the files, rendered from the state whenever it may have changed ----
  let rendering = false;
  let renderAgain = false;
  async function render(): Promise<void> {
    if (rendering) {
      renderAgain = true;
      return;
    }
    rendering = true;
    try {
      do {
        renderAgain = false;
        const all = [...devicesByNode.values()].flat();
        const next = {
          devices: pageServerDevicesFile(node, all),
          tree: treeFile(all, await resolved()),
        };
        options.metrics?.devices({
          exported: lineCount(next.devices),
          mounted: lineCount(next.tree),
        });
        if (next.devices !== written.devices) {
          await writeAtomically(devicesFile, next.devices);
          written = { ...written, devices: next.devices };
          logger.info({ file: devicesFile }, 'page server devices changed');
          options.onPageServerDevicesChanged();
        }
        if (next.tree !== written.tree) {
          await writeAtomically(tree, next.tree);
          written = { ...written, tree: next.tree };
          logger.info({ file: tree }, 'device tree changed');
          hupFuse();
        }
      } while (renderAgain && !closed);
    } catch (err) {
      logger.error({ err }, 'cannot write the device files');
    } finally {
      rendering = false;
    }
  }

  // ---- the control plane's view: a full list, then watch events ----
  let refreshFailures = 0;
  /**
   * `devices/` events applied so far: a list or a report answer that was in
   * flight while one came may be older than it, and must not overwrite it.
   */
  let deviceEvents = 0;
  async function refresh(why: string): Promise<void> {
    try {
      const seen = deviceEvents;
      // Without a mount only this node's own devices matter (its page server's file).
      const [devices, nodes] = await Promise.all([
        mountDir ? client.devices.list() : client.devices.list(node),
        mountDir ? client.nodes.list() : Promise.resolve([]),
      ]);
      if (deviceEvents !== seen) {
        later(0, () => void refresh('raced a watch event'));
        return;
      }
      devicesByNode.clear();
      for (const d of devices) {
        const list = devicesByNode.get(d.node) ?? [];
        list.push(d);
        devicesByNode.set(d.node, list);
      }
      if (mountDir) {
        const names = new Set(nodes.map((n) => n.name));
        for (const n of nodes) if (n.pageserver) endpoints.set(n.name, n.pageserver);
        for (const name of [...endpoints.keys()]) if (!names.has(name)) endpoints.delete(name);
      }
      refreshFailures = 0;
      await render();
    } catch (err) {
      refreshFailures++;
      logger.warn({ err, why }, 'cannot read the device space; keeping the last files');
      later(backoffMs(refreshFailures, 500, 30_000), () => void refresh('retry'));
    }
  }

  const watches: { close(): Promise<void> }[] = [];
  /**
   * `devices/` and `heartbeats/` (every node's endpoint) when this machine
   * mounts the tree; else only `devices/<node>`: an agent without a mount does
   * not hear every heartbeat of the cluster.
   */
  async function follow(root: 'devices/' | 'heartbeats/', failures = 0): Promise<void> {
    if (closed) return;
    const prefix = root === 'devices/' && !mountDir ? `${root}${node}` : root;
    const watch = client.watch({ prefix, retryForMs: 60_000 });
    watches.push(watch);
    try {
      if (root === 'devices/') await refresh('watch opened');
      for await (const event of watch) {
        failures = 0;
        const name = event.key.slice(root.length);
        if (!mountDir && name !== node) continue;
        if (root === 'devices/') {
          deviceEvents++;
          if (event.type === 'delete' || event.value === null) devicesByNode.delete(name);
          else devicesByNode.set(name, viewsOfTable(event.value as DeviceTable));
          void render();
        } else if (event.type === 'put') {
          const endpoint = (event.value as { pageserver?: PageServerEndpoint } | null)?.pageserver;
          if (endpoint && !sameEndpoint(endpoints.get(name), endpoint)) {
            endpoints.set(name, endpoint);
            void render();
          }
        }
      }
    } catch (err) {
      if (!closed) logger.warn({ err, prefix }, 'a device-space watch ended');
    }
    if (closed) return;
    later(backoffMs(failures + 1, 500, 30_000), () => void follow(root, failures + 1));
  }

  const resync = (): void => {
    addresses.clear();
    void refresh('resync');
    if (lastInventory !== undefined) void publish(lastInventory, true);
    later(options.resyncMs * (0.9 + Math.random() * 0.2), resync);
  };

  // ---- this machine's inventory ----
  let lastInventory: DeviceInventoryItem[] | undefined;
  let published: string | undefined;
  let publishing = false;
  async function publish(items: DeviceInventoryItem[], force = false): Promise<void> {
    const text = JSON.stringify(items);
    if ((!force && text === published) || publishing || closed) return;
    publishing = true;
    try {
      const seen = deviceEvents;
      const views = await client.devices.report(node, items);
      if (text !== published) logger.info({ devices: items.length }, 'device inventory published');
      published = text;
      // The watch brings the same change; the answer only saves waiting for it.
      if (deviceEvents === seen) {
        devicesByNode.set(node, views);
        void render();
      }
    } catch (err) {
      published = undefined;
      logger.warn({ err }, 'cannot publish the device inventory; the next probe retries');
    } finally {
      publishing = false;
    }
  }

  // ---- /localdev ----
  let linking = Promise.resolve();
  function relink(items: readonly DeviceInventoryItem[]): void {
    if (!localdevDir) return;
    const wanted = localdevLinks(items);
    linking = linking.then(async () => {
      try {
        await mkdir(localdevDir, { recursive: true });
        for (const entry of await readdir(localdevDir)) {
          const path = join(localdevDir, entry);
          if (!(await lstat(path)).isSymbolicLink()) continue;
          const target = await readlink(path);
          if (wanted.get(entry) !== target) await unlink(path);
        }
        for (const [name, target] of wanted) {
          const path = join(localdevDir, name);
          const current = await readlink(path).catch(() => undefined);
          if (current === target) continue;
          if (current !== undefined) await unlink(path);
          await symlink(target, path).catch((err: NodeJS.ErrnoException) => {
            logger.warn({ err, path }, 'cannot make a /localdev link');
          });
        }
      } catch (err) {
        logger.warn({ err, dir: localdevDir }, 'cannot update /localdev');
      }
    });
  }

  // ---- remotedev-fuse ----
  let fuse: RunningRemotedev | null = null;
  let fuseFailures = 0;
  let hupPending = false;
  function hupFuse(): void {
    const p = fuse;
    if (!p) return; // a daemon started later reads the file as it is then
    const wait = p.startedAt + FUSE_SIGHUP_GRACE_MS - Date.now();
    if (wait > 0) {
      if (!hupPending) {
        hupPending = true;
        later(wait, () => {
          hupPending = false;
          hupFuse();
        });
      }
      return;
    }
    p.child.kill('SIGHUP');
  }

  async function startFuse(): Promise<void> {
    if (closed || !mountDir) return;
    try {
      await mkdir(mountDir, { recursive: true });
      unmount(mountDir); // one left behind by a daemon that was killed
      const p = await startRemotedev({
        mount: mountDir,
        treeFile: tree,
        ...(options.remotedev?.binary ? { binary: options.remotedev.binary } : {}),
        ...(options.tls ? { tls: options.tls } : {}),
        ...(options.remotedev?.extraArgs ? { extraArgs: options.remotedev.extraArgs } : {}),
      });
      if (closed) {
        await p.stop();
        return;
      }
      fuse = p;
      options.metrics?.remotedevStarted();
      logger.info({ pid: p.pid, mount: mountDir }, 'remotedev-fuse mounted');
      // The tree may have changed while it started.
      const started = written.tree;
      later(FUSE_SIGHUP_GRACE_MS, () => {
        if (fuse === p && written.tree !== started) hupFuse();
      });
      void p.exited.then(({ code, signal }) => onFuseExit(p, code, signal));
    } catch (err) {
      fuseFailures++;
      const wait = backoffMs(fuseFailures);
      logger.error(
        { err, failures: fuseFailures, retryInMs: wait },
        'remotedev-fuse did not start',
      );
      later(wait, () => void startFuse());
    }
  }

  function onFuseExit(p: RunningRemotedev, code: number | null, signal: string | null): void {
    if (fuse !== p) return;
    fuse = null;
    options.metrics?.remotedevExited();
    if (closed) return;
    unmount(p.mount);
    fuseFailures = Date.now() - p.startedAt >= FUSE_STABLE_MS ? 1 : fuseFailures + 1;
    const wait = backoffMs(fuseFailures);
    logger.warn(
      { pid: p.pid, code, signal, stderr: p.stderrTail().trim(), retryInMs: wait },
      'remotedev-fuse exited; restarting',
    );
    later(wait, () => void startFuse());
  }

  void follow('devices/');
  if (mountDir) void follow('heartbeats/');
  later(options.resyncMs, resync);
  await startFuse();

  return {
    devicesFile,
    treeFile: tree,
    inventory(items) {
      lastInventory = items;
      options.metrics?.devices({ inventoried: items.length });
      relink(items);
      void publish(items);
    },
    mount: () => (fuse ? { pid: fuse.pid, dir: fuse.mount } : null),
    async close() {
      if (closed) return;
      closed = true;
      clearTimers();
      await Promise.all(watches.map((w) => w.close().catch(() => {})));
      const p = fuse;
      fuse = null;
      if (p) {
        logger.info({ pid: p.pid, mount: p.mount }, 'stopping remotedev-fuse');
        await p.stop();
        options.metrics?.remotedevExited();
      }
      if (mountDir) unmount(mountDir);
      await linking;
    },
  };
}
