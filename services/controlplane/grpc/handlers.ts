/**
 * One handler per RPC of openapi/amalgam.proto, the gRPC twin of
 * rest/handlers.ts: map the decoded request to the contract's request, call
 * ONE service function, map the result. Permissions and validation are the
 * service layer's (the same for REST and gRPC); the proto types only decide
 * the shapes.
 *
 * Decoded requests (proto.ts options): unset scalars are their zero value,
 * unset `optional` fields are absent and unset messages are null.
 */

import type {
  AllocateSegmentRequest,
  Caller,
  ControlPlaneRuntime,
  CreateTokenRequest,
  DeviceView,
  ExportPolicy,
  JoinRequest,
  LoadReport,
  NodeCapacity,
  PageServerEndpoint,
  TokenUsage,
} from '../../api/contracts.ts';
import type { DeviceInventoryItem } from '../../core/devices.ts';
import type { Placement } from '../../core/segments.ts';
import { processMethods } from '../features/processes/process-grpc.ts';

/** What a unary handler gets: the caller from TLS and the decoded request. */
export type UnaryHandler = (
  runtime: ControlPlaneRuntime,
  caller: Caller,
  request: Record<string, unknown>,
) => Promise<unknown>;

export interface UnaryMethod {
  /** Open to anonymous callers (only Join). */
  anonymous?: boolean;
  handle: UnaryHandler;
}

const EMPTY = Object.freeze({});

const str = (value: unknown): string => (typeof value === 'string' ? value : '');
const present = <T>(value: T | null | undefined): T | undefined =>
  value === null ? undefined : value;

/** A message field: null (unset) stays undefined so the service reports the missing field. */
function message<T>(value: unknown): T | undefined {
  return value === null || value === undefined ? undefined : (value as T);
}

function placement(value: unknown): Placement | undefined {
  const p = message<{ mode?: string; node?: string }>(value);
  if (!p) return undefined;
  return (p.node === undefined ? { mode: p.mode } : { mode: p.mode, node: p.node }) as Placement;
}

function createTokenRequest(request: Record<string, unknown>): CreateTokenRequest {
  const out: CreateTokenRequest = {};
  const ttl = present(request.ttlSeconds as number | undefined);
  if (ttl !== undefined) out.ttlSeconds = ttl;
  const description = present(request.description as string | undefined);
  if (description !== undefined) out.description = description;
  const usages = request.usages as TokenUsage[] | undefined;
  if (usages && usages.length > 0) out.usages = usages;
  return out;
}

function joinRequest(request: Record<string, unknown>): JoinRequest {
  const out = {
    token: str(request.token),
    name: str(request.name),
    csr: str(request.csr),
    capacity: message<NodeCapacity>(request.capacity),
  } as JoinRequest;
  const roles = request.roles as string[] | undefined;
  if (roles && roles.length > 0) out.roles = roles;
  const labels = request.labels as Record<string, string> | undefined;
  if (labels && Object.keys(labels).length > 0) out.labels = labels;
  return out;
}

function allocateRequest(request: Record<string, unknown>): AllocateSegmentRequest {
  const out: AllocateSegmentRequest = { size: request.size as number };
  const p = placement(request.placement);
  if (p) out.placement = p;
  const id = present(request.id as string | undefined);
  if (id !== undefined) out.id = id;
  return out;
}

const items = (list: readonly unknown[]) => ({ items: list });

function inventoryItem(value: unknown): DeviceInventoryItem {
  const r = (message<Record<string, unknown>>(value) ?? {}) as Record<string, unknown>;
  return {
    name: str(r.name),
    kind: str(r.kind),
    path: str(r.path),
    sizeBytes: r.sizeBytes,
    readOnly: r.readOnly,
    partitions: Array.isArray(r.partitions) ? r.partitions : [],
    ...(present(r.major) === undefined ? {} : { major: r.major }),
    ...(present(r.minor) === undefined ? {} : { minor: r.minor }),
    ...(present(r.parent) === undefined ? {} : { parent: r.parent }),
  } as DeviceInventoryItem;
}

/** A DeviceView as the proto's Device: null members are left unset. */
function deviceToProto(view: DeviceView): Record<string, unknown> {
  const { major, minor, parent, ...rest } = view;
  return {
    ...rest,
    ...(major === null ? {} : { major }),
    ...(minor === null ? {} : { minor }),
    ...(parent === null ? {} : { parent }),
  };
}
const deviceItems = (list: readonly DeviceView[]) => ({ items: list.map(deviceToProto) });

export const unaryMethods: Record<string, Record<string, UnaryMethod>> = {
  Cluster: {
    GetInfo: { handle: (runtime, caller) => runtime.cluster.info(caller) },
  },
  Tokens: {
    Create: {
      handle: (runtime, caller, r) => runtime.tokens.create(caller, createTokenRequest(r)),
    },
    List: { handle: async (runtime, caller) => items(await runtime.tokens.list(caller)) },
    Delete: {
      handle: async (runtime, caller, r) => {
        await runtime.tokens.delete(caller, str(r.id));
        return EMPTY;
      },
    },
  },
  Nodes: {
    Join: { anonymous: true, handle: (runtime, _caller, r) => runtime.nodes.join(joinRequest(r)) },
    List: { handle: async (runtime, caller) => items(await runtime.nodes.list(caller)) },
    Get: { handle: (runtime, caller, r) => runtime.nodes.get(caller, str(r.name)) },
    Heartbeat: {
      handle: (runtime, caller, r) =>
        runtime.nodes.heartbeat(
          caller,
          str(r.name),
          message<LoadReport>(r.load) as LoadReport,
          message<PageServerEndpoint>(r.pageserver),
        ),
    },
    Drain: { handle: (runtime, caller, r) => runtime.nodes.drain(caller, str(r.name)) },
    Remove: {
      handle: async (runtime, caller, r) => {
        await runtime.nodes.remove(caller, str(r.name));
        return EMPTY;
      },
    },
  },
  Devices: {
    List: {
      handle: async (runtime, caller, r) =>
        deviceItems(await runtime.devices.list(caller, present(r.node as string | undefined))),
    },
    Get: {
      handle: async (runtime, caller, r) =>
        deviceToProto(await runtime.devices.get(caller, str(r.node), str(r.device))),
    },
    Report: {
      handle: async (runtime, caller, r) =>
        deviceItems(
          await runtime.devices.report(
            caller,
            str(r.name),
            (Array.isArray(r.devices) ? r.devices : []).map(inventoryItem),
          ),
        ),
    },
    SetExport: {
      handle: async (runtime, caller, r) =>
        deviceToProto(
          await runtime.devices.setExport(
            caller,
            str(r.node),
            str(r.device),
            str(r.policy) as ExportPolicy,
          ),
        ),
    },
  },
  Memory: {
    GetLayout: { handle: (runtime, caller) => runtime.memory.layout(caller) },
    AllocateSegment: {
      handle: (runtime, caller, r) => runtime.memory.allocateSegment(caller, allocateRequest(r)),
    },
    ListSegments: {
      handle: async (runtime, caller) => items(await runtime.memory.listSegments(caller)),
    },
    GetSegment: { handle: (runtime, caller, r) => runtime.memory.getSegment(caller, str(r.id)) },
    FreeSegment: {
      handle: async (runtime, caller, r) => {
        await runtime.memory.freeSegment(caller, str(r.id));
        return EMPTY;
      },
    },
  },
  Processes: processMethods,
};
