/**
 * Where a node's page server may say it listens. A page server published on
 * a loopback (127.0.0.0/8, ::1, `localhost`) or unspecified (0.0.0.0, ::)
 * address is reached by every other node on ITS OWN machine: with a fixed
 * port, `/remotedev/M/sda` would land on the reader's own `sda`, and netmem
 * would read the wrong node's memory. Such endpoints are refused in
 * heartbeats unless the whole cluster is one machine (`singleMachine`).
 * Pure: no I/O, no name resolution (a name other than localhost is checked
 * by the clients' certificate check instead).
 */
import { AmalgamError } from './errors.ts';

/** The host of `host:port`, brackets of an IPv6 host removed, lower case. */
export function endpointHost(address: string): string {
  const colon = address.lastIndexOf(':');
  const host = colon < 0 ? address : address.slice(0, colon);
  return host.replace(/^\[(.*)\]$/, '$1').toLowerCase();
}

const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

function ipv4Local(host: string): boolean {
  const m = IPV4.exec(host);
  return m !== null && (m[1] === '127' || host === '0.0.0.0');
}

/** The 8 words of an IPv6 address without an embedded IPv4 part, or null. */
function ipv6Words(host: string): number[] | null {
  const halves = host.split('::');
  if (halves.length > 2) return null;
  const words = (s: string): number[] =>
    s === ''
      ? []
      : s.split(':').map((g) => (/^[0-9a-f]{1,4}$/.test(g) ? Number.parseInt(g, 16) : Number.NaN));
  const head = words(halves[0] as string);
  const tail = halves.length === 2 ? words(halves[1] as string) : [];
  if ([...head, ...tail].some((w) => Number.isNaN(w))) return null;
  if (halves.length === 1) return head.length === 8 ? head : null;
  const fill = 8 - head.length - tail.length;
  return fill < 1 ? null : [...head, ...new Array<number>(fill).fill(0), ...tail];
}

/** `::1`, `::`, and IPv4-mapped loopback or unspecified (`::ffff:127.0.0.1`). */
function ipv6Local(host: string): boolean {
  const mapped = /^(.*:)ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(host);
  if (mapped?.[1] && mapped[2]) {
    const prefix = ipv6Words(`${mapped[1]}ffff:0:0`);
    const isMapped = prefix?.slice(0, 5).every((w) => w === 0) === true && prefix[5] === 0xffff;
    return isMapped && ipv4Local(mapped[2]);
  }
  const w = ipv6Words(host);
  if (w === null) return false;
  return w.slice(0, 7).every((x) => x === 0) && (w[7] === 0 || w[7] === 1);
}

/** True when `host` names this very machine wherever it is resolved. */
export function isLocalOnlyHost(host: string): boolean {
  const h = host.toLowerCase().replace(/\.$/, '');
  return h === 'localhost' || h.endsWith('.localhost') || ipv4Local(h) || ipv6Local(h);
}

/** A loopback host (127.0.0.0/8, ::1, localhost): a listener there is reachable from this machine only. */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase();
  return isLocalOnlyHost(h) && h !== '0.0.0.0' && ipv6Words(h)?.every((w) => w === 0) !== true;
}

/**
 * Throws INVALID_ARGUMENT naming `pageserver.host` when the endpoint is on a
 * loopback or unspecified address and the cluster is not single-machine.
 */
export function checkPublishedEndpoint(
  endpoint: { address: string },
  cluster: { singleMachine: boolean },
): void {
  if (cluster.singleMachine) return;
  const host = endpointHost(endpoint.address);
  if (!isLocalOnlyHost(host)) return;
  throw new AmalgamError(
    'INVALID_ARGUMENT',
    `pageserver.host: ${host} reaches only the machine that resolves it; publish an address other nodes can reach (loopback is allowed only when clusterd's config says singleMachine: true)`,
    { field: 'pageserver.host' },
  );
}
