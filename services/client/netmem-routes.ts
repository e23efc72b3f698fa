/**
 * What the native netmem library (netmem-run, netmem-tool, netmem_map) needs
 * to reach the network memory space: one route per node range, to the page
 * server that node published, in the text form netmem reads
 * (`START:SIZE=NODE@HOST:PORT`, one a line: NODE is the range's owner, whose
 * certificate netmem requires of the page server at HOST:PORT), and a segment's extents as a
 * `--map` spec (`GLOBAL:SIZE,...`, mapped back to back).
 */
import type { MemoryLayoutView, NodeView, SegmentView } from '../api/contracts.ts';

export interface NetmemRoute {
  node: string;
  start: number;
  size: number;
  /** `host:port` of the node's page server; null while it has published none. */
  address: string | null;
  tls: boolean;
}

export function netmemRoutes(
  layout: MemoryLayoutView,
  nodes: Pick<NodeView, 'name' | 'pageserver'>[],
): NetmemRoute[] {
  const servers = new Map(nodes.map((n) => [n.name, n.pageserver]));
  return layout.layout.ranges.map((r) => {
    const ps = servers.get(r.node) ?? null;
    return {
      node: r.node,
      start: r.start,
      size: r.size,
      address: ps?.address ?? null,
      tls: ps?.tls ?? false,
    };
  });
}

/** The routes file: ranges whose page server is unknown are left out (their bytes SIGBUS). */
export function formatRoutesFile(routes: NetmemRoute[]): string {
  return routes
    .filter((r) => r.address !== null)
    .map((r) => `0x${r.start.toString(16)}:${r.size}=${r.node}@${r.address}\n`)
    .join('');
}

export function netmemMapSpec(segment: Pick<SegmentView, 'extents'>): string {
  return segment.extents.map((e) => `0x${e.start.toString(16)}:${e.size}`).join(',');
}
