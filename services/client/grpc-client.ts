/**
 * `AmalgamClient` over gRPC: the same methods, types in and out, and errors
 * as over REST (client.ts), so a caller does not care which door it uses.
 * Messages are mapped back to the contracts as the server's
 * controlplane/grpc/handlers.ts maps them out (proto3 leaves an unset field
 * out where REST says null).
 *
 * Which calls may fail over (grpc-transport.ts): reads (GetInfo, List*,
 * Get*, GetLayout, the health check) after any failure without an answer;
 * writes (Create, Delete, Join, Heartbeat, Drain, Remove, AllocateSegment,
 * FreeSegment, Devices Report and SetExport) only when they were never sent.
 */
import type {
  ClusterInfo,
  CreatedToken,
  DeviceView,
  JoinResult,
  LoadReport,
  MemoryLayoutView,
  NodeView,
  PageServerEndpoint,
  ResourceEvent,
  SegmentView,
  TokenView,
} from '../api/contracts.ts';
import type { Placement } from '../core/segments.ts';
import type { AmalgamClient } from './client.ts';
import { ClientError } from './errors.ts';
import { type CallKind, createGrpcTransport, type GrpcTransportOptions } from './grpc-transport.ts';
import { type OpenEvents, resumableWatch } from './watch.ts';

type Message = Record<string, unknown>;

const absent = (value: unknown): boolean => value === null || value === undefined;

function items(value: unknown): Message[] {
  const list = (value as { items?: unknown } | null)?.items;
  return Array.isArray(list) ? (list as Message[]) : [];
}

/** Node: `lastHeartbeatAt` and `load` unset -> null, as REST answers. */
export function nodeFromProto(value: Message): NodeView {
  const { lastHeartbeatAt, load, pageserver, labels, ...rest } = value;
  return {
    ...rest,
    labels: (labels ?? {}) as Record<string, string>,
    lastHeartbeatAt: absent(lastHeartbeatAt) ? null : (lastHeartbeatAt as string),
    load: absent(load) ? null : (load as LoadReport),
    pageserver: absent(pageserver) ? null : (pageserver as PageServerEndpoint),
  } as NodeView;
}

/** Segment: a spread placement has no `node`. */
export function segmentFromProto(value: Message): SegmentView {
  const p = (value.placement ?? { mode: 'spread' }) as { mode: string; node?: string | null };
  const placement = (
    p.mode === 'pinned' ? { mode: 'pinned', node: p.node ?? '' } : { mode: p.mode }
  ) as Placement;
  return { ...value, placement } as SegmentView;
}

/** Device: `major`, `minor` and `parent` unset -> null, as REST answers. */
export function deviceFromProto(value: Message): DeviceView {
  const { major, minor, parent, partitions, ...rest } = value;
  return {
    ...rest,
    major: absent(major) ? null : (major as number),
    minor: absent(minor) ? null : (minor as number),
    parent: absent(parent) ? null : (parent as string),
    partitions: Array.isArray(partitions) ? (partitions as string[]) : [],
  } as DeviceView;
}

/** A contract object without its null or undefined members (proto3 `optional` left unset). */
function withoutNulls(value: object): Message {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== null && v !== undefined));
}

/** ResourceEvent: `value_json` is the resource as JSON text, empty on delete. */
export function eventFromProto(value: Message): ResourceEvent {
  const text = typeof value.valueJson === 'string' ? value.valueJson : '';
  let parsed: unknown = null;
  if (text !== '') {
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new ClientError('BAD_RESPONSE', 'a watch event whose value is not JSON', {
        key: value.key,
      });
    }
  }
  return {
    type: value.type as ResourceEvent['type'],
    key: String(value.key),
    value: parsed,
    revision: Number(value.revision),
  };
}

/** The request without its undefined members (an unset `optional` field stays unset). */
function defined(value: object): Message {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined));
}

export type GrpcClientOptions = GrpcTransportOptions;

export function createGrpcClient(options: GrpcClientOptions): AmalgamClient {
  const transport = createGrpcTransport(options);
  const call = <T>(service: string, method: string, request: object, kind: CallKind) =>
    transport.unary<T>(`amalgam.v1.${service}`, method, defined(request), kind);
  const read = <T>(service: string, method: string, request: object = {}) =>
    call<T>(service, method, request, 'read');
  const write = <T>(service: string, method: string, request: object = {}) =>
    call<T>(service, method, request, 'write');

  const health = async (): Promise<string> => {
    const answer = await transport.unary<{ status?: unknown }>(
      'grpc.health.v1.Health',
      'Check',
      { service: '' },
      'read',
    );
    return String(answer.status);
  };

  return {
    cluster: {
      info: () => read<ClusterInfo>('Cluster', 'GetInfo'),
    },
    tokens: {
      create: (request = {}) => write<CreatedToken>('Tokens', 'Create', request),
      list: async () => items(await read('Tokens', 'List')) as unknown as TokenView[],
      delete: async (id) => {
        await write('Tokens', 'Delete', { id });
      },
    },
    nodes: {
      join: async (request) => {
        const result = await write<Message>('Nodes', 'Join', request);
        return {
          node: nodeFromProto(result.node as Message),
          certificate: result.certificate,
          caCertificate: result.caCertificate,
          rejoined: result.rejoined,
        } as JoinResult;
      },
      list: async () => items(await read('Nodes', 'List')).map(nodeFromProto),
      get: async (name) => nodeFromProto(await read<Message>('Nodes', 'Get', { name })),
      heartbeat: async (name, load, pageserver) =>
        nodeFromProto(
          await write<Message>('Nodes', 'Heartbeat', {
            name,
            load,
            ...(pageserver === undefined ? {} : { pageserver }),
          }),
        ),
      drain: async (name) => nodeFromProto(await write<Message>('Nodes', 'Drain', { name })),
      remove: async (name) => {
        await write('Nodes', 'Remove', { name });
      },
    },
    memory: {
      layout: () => read<MemoryLayoutView>('Memory', 'GetLayout'),
      allocateSegment: async (request) =>
        segmentFromProto(await write<Message>('Memory', 'AllocateSegment', request)),
      listSegments: async () => items(await read('Memory', 'ListSegments')).map(segmentFromProto),
      getSegment: async (id) =>
        segmentFromProto(await read<Message>('Memory', 'GetSegment', { id })),
      freeSegment: async (id) => {
        await write('Memory', 'FreeSegment', { id });
      },
    },
    devices: {
      list: async (node) => items(await read('Devices', 'List', { node })).map(deviceFromProto),
      get: async (node, device) =>
        deviceFromProto(await read<Message>('Devices', 'Get', { node, device })),
      report: async (name, devices) =>
        items(await write('Devices', 'Report', { name, devices: devices.map(withoutNulls) })).map(
          deviceFromProto,
        ),
      setExport: async (node, device, policy) =>
        deviceFromProto(await write<Message>('Devices', 'SetExport', { node, device, policy })),
    },
    watch: (request) => {
      const open: OpenEvents = async function* (from, signal, connected) {
        const stream = transport.serverStream<Message>(
          'amalgam.v1.Watch',
          'Watch',
          defined({ prefix: request.prefix, fromRevision: from }),
          signal,
          connected,
        );
        for await (const message of stream) yield eventFromProto(message);
      };
      return resumableWatch(request, open);
    },
    // grpc.health.v1 answered at all: the process is alive (REST /healthz).
    healthy: async () => {
      await health();
      return true;
    },
    ready: async () => (await health()) === 'SERVING',
    close: () => transport.close(),
  };
}
