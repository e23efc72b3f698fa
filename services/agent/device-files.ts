/**
 * The two files the agent writes for the native data path, as pure functions
 * of what the control plane says (the contract with native/):
 *
 * - the page server's `--devices FILE`: one line per device of THIS node that
 *   is exported, `<name> <ro|rw> <path>`;
 * - remotedev-fuse's `--tree FILE`: one line per exported device of every
 *   node (this one too), `<machine> <dev> <size-bytes> <ro|rw> <host:port>
 *   <tls|plain>`, where the endpoint is the owner's page server as its
 *   heartbeats publish it (`NodeView.pageserver`).
 *
 * Only what is exported appears (`effectivePolicy`: the admin's policy,
 * lowered to ro when the owner cannot write the device, none while it is
 * absent): an unexported device is served by no page server and shown by no
 * mount. A device whose owner never published a page server is left out of
 * the tree (nowhere to send its I/O); an owner that has gone keeps its last
 * known endpoint, so its files stay and their I/O fails with EIO. Endpoints
 * are addresses (remotedev-fuse does not resolve names within its timeouts):
 * one whose host is a name is left out until the agent resolved it
 * (`endpointHost`, `withAddress`).
 */

import { isIP } from 'node:net';
import type { DeviceView, PageServerEndpoint } from '../api/contracts.ts';
import { effectivePolicy } from '../core/devices.ts';

/** DeviceView -> the fields effectivePolicy reads. */
function policyOf(device: DeviceView): 'none' | 'ro' | 'rw' {
  return effectivePolicy({ ...device, updatedAt: 0 });
}

const byName = (a: DeviceView, b: DeviceView): number =>
  a.node === b.node ? (a.name < b.name ? -1 : 1) : a.node < b.node ? -1 : 1;

export function pageServerDevicesFile(node: string, devices: readonly DeviceView[]): string {
  const lines = devices
    .filter((d) => d.node === node && policyOf(d) !== 'none')
    .sort(byName)
    .map((d) => `${d.name} ${policyOf(d)} ${d.path}`);
  return header('pageserver --devices', lines);
}

export function treeFile(
  devices: readonly DeviceView[],
  endpoints: ReadonlyMap<string, PageServerEndpoint>,
): string {
  const lines: string[] = [];
  for (const d of [...devices].sort(byName)) {
    const policy = policyOf(d);
    const endpoint = endpoints.get(d.node);
    if (policy === 'none' || !endpoint || isIP(endpointHost(endpoint.address)) === 0) continue;
    lines.push(
      `${d.node} ${d.name} ${d.sizeBytes} ${policy} ${endpoint.address} ${endpoint.tls ? 'tls' : 'plain'}`,
    );
  }
  return header('remotedev-fuse --tree', lines);
}

/** The host of `host:port` (brackets of an IPv6 host removed). */
export function endpointHost(address: string): string {
  const colon = address.lastIndexOf(':');
  return address.slice(0, colon).replace(/^\[(.*)\]$/, '$1');
}

/** `address` with its host replaced by `ip` (bracketed when IPv6). */
export function withAddress(address: string, ip: string): string {
  const port = address.slice(address.lastIndexOf(':') + 1);
  return `${isIP(ip) === 6 ? `[${ip}]` : ip}:${port}`;
}

function header(what: string, lines: string[]): string {
  return `# ${what}: written by clusteragent from the control plane; do not edit\n${lines.map((l) => `${l}\n`).join('')}`;
}

/** What /localdev should hold: `<name>` -> the device's path, for this machine's own devices. */
export function localdevLinks(
  devices: readonly { name: string; path: string }[],
): Map<string, string> {
  return new Map(devices.map((d) => [d.name, d.path]));
}
