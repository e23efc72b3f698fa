/**
 * The cluster as placement and the rebalancer see it, read from the mirror:
 * every node with the CPUs it offers (its fresh load report, else its
 * capacity) and the demand of the processes whose home it is. The reading is
 * `ProcessSnapshots`; the arithmetic is the pure `placementNodes`.
 */
import type { ProcessLoadView } from '../../../api/contracts.ts';
import type { PlacementNode } from '../../../core/placement.ts';
import { isTerminal, type ProcessRecord } from '../../../core/processes.ts';
import type { Mirror } from '../../../store/mirror.ts';
import type { NodeRecord } from '../nodes/records.ts';
import { nodeKeys } from '../nodes/records.ts';
import { parseProcessLoad, parseProcessRecord, processKeys } from './records.ts';

/** A load report is current this long; older ones say nothing about the node's CPUs. */
export const LOAD_FRESH_MS = 60_000;

export interface ProcessSnapshot {
  nodes: PlacementNode[];
  records: ProcessRecord[];
  loads: ProcessLoadView[];
}

type NodeFacts = Pick<NodeRecord, 'name' | 'capacity' | 'labels' | 'roles' | 'state'>;

/** Pure: the placement view of `nodes`, given who is alive, their loads and the active records. */
export function placementNodes(input: {
  nodes: readonly NodeFacts[];
  alive: ReadonlySet<string>;
  loads: readonly ProcessLoadView[];
  records: readonly ProcessRecord[];
  now: number;
}): PlacementNode[] {
  const loadOf = new Map(input.loads.map((l) => [l.node, l]));
  const demand = new Map<string, number>();
  for (const r of input.records) {
    if (!isTerminal(r.state)) demand.set(r.home, (demand.get(r.home) ?? 0) + r.cpus);
  }
  return input.nodes.map((node) => {
    const load = loadOf.get(node.name);
    const fresh = load !== undefined && input.now - load.reportedAt < LOAD_FRESH_MS;
    return {
      name: node.name,
      cpus: fresh ? load.cpus : node.capacity.cpus,
      speed: fresh ? load.cpuSpeed : node.capacity.cpuSpeed,
      labels: node.labels,
      roles: node.roles,
      ready: input.alive.has(node.name) && node.state !== 'Draining' && node.state !== 'Removed',
      demand: demand.get(node.name) ?? 0,
    };
  });
}

/** Reads snapshots from the mirror; parsed records are reused while their revision holds. */
export class ProcessSnapshots {
  private readonly parsed = new Map<string, { rev: number; record: ProcessRecord }>();

  constructor(
    private readonly mirror: Mirror,
    private readonly now: () => number,
  ) {}

  /** Every process record the mirror holds (sync it first). */
  records(): ProcessRecord[] {
    const out: ProcessRecord[] = [];
    const seen = new Set<string>();
    for (const kv of this.mirror.range(processKeys.processes)) {
      seen.add(kv.key);
      let hit = this.parsed.get(kv.key);
      if (!hit || hit.rev !== kv.modRevision) {
        hit = { rev: kv.modRevision, record: parseProcessRecord(kv.value) };
        this.parsed.set(kv.key, hit);
      }
      out.push(hit.record);
    }
    if (this.parsed.size > seen.size) {
      for (const k of this.parsed.keys()) if (!seen.has(k)) this.parsed.delete(k);
    }
    return out;
  }

  /** Every node's last load report (sync the mirror first). */
  loads(): ProcessLoadView[] {
    return this.mirror.range(processKeys.loads).map((kv) => parseProcessLoad(kv.value));
  }

  /** A synced snapshot; without records (a pinned placement) no record is read. */
  async take(withRecords = true): Promise<ProcessSnapshot> {
    await this.mirror.sync();
    const alive = new Set(
      this.mirror.range(nodeKeys.heartbeats).map((kv) => kv.key.slice(nodeKeys.heartbeats.length)),
    );
    const loads = this.loads();
    const records = withRecords ? this.records() : [];
    // Node records are the nodes feature's; only the placement facts are used here.
    const nodes = this.mirror.range(nodeKeys.nodes).map((kv) => JSON.parse(kv.value) as NodeFacts);
    return {
      nodes: placementNodes({ nodes, alive, loads, records, now: this.now() }),
      records,
      loads,
    };
  }
}
