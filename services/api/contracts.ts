/**
 * The public API's requests, responses and views: what clients, agents and
 * the CLI exchange with the control plane over REST and gRPC alike. The types
 * are generated from openapi/amalgam.yaml (types.ts); the server's own
 * interfaces (Caller, ControlPlane, WatchService) live in
 * services/controlplane/service/contracts.ts.
 */
import type { DeviceInventoryItem, DeviceKind, ExportPolicy } from '../core/devices.ts';
import type { NodeRange } from '../core/memory-layout.ts';

export type * from './types.ts';
export type { DeviceInventoryItem, DeviceKind, ExportPolicy, NodeRange };

/**
 * What to watch. Events (`ResourceEvent`) come in revision order and carry the
 * API view of the resource at `key` (null for a delete): `nodes/<name>` a
 * NodeView, `heartbeats/<name>` a NodeLiveness, `devices/<node>` that node's
 * DeviceView[], `memory/layout` a MemoryLayoutView, `memory/segments` the
 * SegmentView[], `processes/<cpid>` a ProcessView. To resume after a
 * disconnect, watch again from the last event's revision: no gap.
 */
export interface WatchRequest {
  /** One of the watchable roots (`nodes/`, `heartbeats/`, `memory/`, `devices/`, `processes/`) or a prefix inside one. */
  prefix: string;
  /** Deliver every change with revision >= this; default: changes from now on. */
  fromRevision?: number;
}
