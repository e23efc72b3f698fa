/**
 * Where a new process runs: the eligible node with the most free CPU times its
 * CPU speed score (the node that will run it fastest), respecting labels and
 * roles (compute, memory and disk servers: the Amoeba idea). Pure.
 */
import { AmalgamError } from './errors.ts';

export interface PlacementNode {
  name: string;
  /** CPUs the node offers to cluster processes. */
  cpus: number;
  /** Relative CPU speed score (higher is faster). */
  speed: number;
  labels: Record<string, string>;
  roles: string[];
  /** Only Ready nodes take new processes. */
  ready: boolean;
  /** CPUs already asked for by the cluster processes whose home it is. */
  demand: number;
}

export interface PlacementRequest {
  cpus: number;
  /** Every label must be on the node (`role=compute` also matches a node role). */
  labels: Record<string, string>;
  /** Pin to this node. */
  node?: string;
}

export function fits(
  node: Pick<PlacementNode, 'labels' | 'roles'>,
  labels: Record<string, string>,
) {
  return Object.entries(labels).every(
    ([k, v]) => node.labels[k] === v || (k === 'role' && node.roles.includes(v)),
  );
}

/** Expected run time per unit of work there: how loaded the node is per unit of speed. */
export function pressure(demand: number, node: Pick<PlacementNode, 'cpus' | 'speed'>): number {
  return demand / (Math.max(node.cpus, 1e-9) * Math.max(node.speed, 1e-9));
}

/** The chosen node's name; NO_PLACEMENT when none qualifies. */
export function placeProcess(nodes: readonly PlacementNode[], request: PlacementRequest): string {
  if (request.node !== undefined) {
    const node = nodes.find((n) => n.name === request.node);
    if (!node) throw new AmalgamError('NODE_NOT_FOUND', request.node, { field: 'node' });
    if (!node.ready) {
      throw new AmalgamError('NO_PLACEMENT', `node ${request.node} is not Ready`, {
        node: request.node,
      });
    }
    return node.name;
  }
  const eligible = nodes.filter((n) => n.ready && fits(n, request.labels));
  if (eligible.length === 0) {
    throw new AmalgamError('NO_PLACEMENT', 'no Ready node has the labels asked for', {
      labels: request.labels,
    });
  }
  const score = (n: PlacementNode) => Math.max(n.cpus - n.demand, 0) * n.speed;
  const best = [...eligible].sort(
    (a, b) =>
      score(b) - score(a) ||
      // All full: the least pressure after adding this process.
      pressure(a.demand + request.cpus, a) - pressure(b.demand + request.cpus, b) ||
      a.name.localeCompare(b.name),
  )[0] as PlacementNode;
  return best.name;
}
