/**
 * The two files of the native data path, rendered from what the control
 * plane knows (device-files.ts renders, this writes): the page server's
 * `--devices` file and remotedev-fuse's `--tree` file, each replaced
 * atomically (a temp file and a rename) only when its content changed, and
 * followed by a call that makes its reader re-read it (SIGHUP). One render at
 * a time; a change during one makes one more.
 */
import { randomUUID } from 'node:crypto';
import { lookup } from 'node:dns/promises';
import { rename, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import type { Logger } from 'pino';
import type { DeviceView, PageServerEndpoint } from '../api/contracts.ts';
import { endpointHost, pageServerDevicesFile, treeFile, withAddress } from './device-files.ts';
import type { AgentMetrics } from './metrics.ts';

/** Replace `file` with `text` at once (a temp file and a rename): a reader never sees half. */
export async function writeAtomically(file: string, text: string): Promise<void> {
  const temp = `${file}.${process.pid}.${randomUUID().slice(0, 8)}.tmp`;
  await writeFile(temp, text, { mode: 0o644 });
  await rename(temp, file);
}

/** Lines that are not comments. */
const lineCount = (text: string): number =>
  text.split('\n').filter((l) => l !== '' && !l.startsWith('#')).length;

export interface DeviceFilesOptions {
  node: string;
  devicesFile: string;
  treeFile: string;
  logger: Logger;
  metrics?: AgentMetrics;
  onDevicesChanged(): void;
  onTreeChanged(): void;
}

export class DeviceFilesWriter {
  /** Every device the control plane knows, by node. */
  readonly devicesByNode = new Map<string, DeviceView[]>();
  /** Each node's last published page server (kept when its heartbeat lapses). */
  readonly endpoints = new Map<string, PageServerEndpoint>();
  readonly #o: DeviceFilesOptions;
  /** Host names resolved to addresses, once per resync. */
  readonly #addresses = new Map<string, string>();
  #written = { devices: '', tree: '' };
  #rendering = false;
  #again = false;

  constructor(options: DeviceFilesOptions) {
    this.#o = options;
  }

  get tree(): string {
    return this.#written.tree;
  }

  /** Both files exist before anything reads them: empty until the control plane answers. */
  async init(): Promise<void> {
    this.#written = {
      devices: pageServerDevicesFile(this.#o.node, []),
      tree: treeFile([], new Map()),
    };
    await Promise.all([
      writeAtomically(this.#o.devicesFile, this.#written.devices),
      writeAtomically(this.#o.treeFile, this.#written.tree),
    ]);
  }

  forgetAddresses(): void {
    this.#addresses.clear();
  }

  async render(): Promise<void> {
    if (this.#rendering) {
      this.#again = true;
      return;
    }
    this.#rendering = true;
    try {
      do {
        this.#again = false;
        await this.#renderOnce();
      } while (this.#again);
    } catch (err) {
      this.#o.logger.error({ err }, 'cannot write the device files');
    } finally {
      this.#rendering = false;
    }
  }

  async #renderOnce(): Promise<void> {
    const all = [...this.devicesByNode.values()].flat();
    const next = {
      devices: pageServerDevicesFile(this.#o.node, all),
      tree: treeFile(all, await this.#resolved()),
    };
    this.#o.metrics?.devices({ exported: lineCount(next.devices), mounted: lineCount(next.tree) });
    if (next.devices !== this.#written.devices) {
      await writeAtomically(this.#o.devicesFile, next.devices);
      this.#written = { ...this.#written, devices: next.devices };
      this.#o.logger.info({ file: this.#o.devicesFile }, 'page server devices changed');
      this.#o.onDevicesChanged();
    }
    if (next.tree !== this.#written.tree) {
      await writeAtomically(this.#o.treeFile, next.tree);
      this.#written = { ...this.#written, tree: next.tree };
      this.#o.logger.info({ file: this.#o.treeFile }, 'device tree changed');
      this.#o.onTreeChanged();
    }
  }

  /** The endpoints with host names resolved to addresses (a name that does not resolve: left out). */
  async #resolved(): Promise<Map<string, PageServerEndpoint>> {
    const out = new Map<string, PageServerEndpoint>();
    for (const [name, endpoint] of this.endpoints) {
      const host = endpointHost(endpoint.address);
      if (isIP(host) !== 0) {
        out.set(name, endpoint);
        continue;
      }
      const ip = await this.#resolve(name, host);
      if (ip !== undefined)
        out.set(name, { ...endpoint, address: withAddress(endpoint.address, ip) });
    }
    return out;
  }

  async #resolve(node: string, host: string): Promise<string | undefined> {
    let ip = this.#addresses.get(host);
    if (ip !== undefined) return ip;
    try {
      ip = (await lookup(host)).address;
      this.#addresses.set(host, ip);
      return ip;
    } catch (err) {
      this.#o.logger.warn(
        { err, node, host },
        "cannot resolve a page server's host; its devices wait",
      );
      return undefined;
    }
  }
}
