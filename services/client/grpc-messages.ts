/**
 * gRPC messages mapped back to the contracts, as the server's gRPC handlers
 * map them out: proto3 leaves an unset field out where REST says null, and
 * an unset map or repeated field reads as empty.
 */
import type {
  DeviceView,
  LoadReport,
  NodeView,
  PageServerEndpoint,
  ProcessLoadView,
  ProcessView,
  ResourceEvent,
  SegmentView,
} from '../api/contracts.ts';
import type { Migration } from '../core/processes.ts';
import type { Placement } from '../core/segments.ts';
import { ClientError } from './errors.ts';

export type Message = Record<string, unknown>;

const absent = (value: unknown): boolean => value === null || value === undefined;

export function items(value: unknown): Message[] {
  const list = (value as { items?: unknown } | null)?.items;
  return Array.isArray(list) ? (list as Message[]) : [];
}

/** Token: `maxUses` unset -> null (any number of joins), as REST answers. */
export function tokenFromProto<T extends { maxUses: number | null }>(value: Message): T {
  return { ...value, maxUses: absent(value.maxUses) ? null : value.maxUses } as T;
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
export function withoutNulls(value: object): Message {
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
export function defined(value: object): Message {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined));
}

const orNull = <T>(value: unknown): T | null => (absent(value) ? null : (value as T));

/** Migration: `sourceStopped` and `sourceLostAt` unset -> null. */
function migrationFromProto(value: unknown): Migration | null {
  if (absent(value)) return null;
  const { sourceStopped, sourceLostAt, ...rest } = value as Message;
  return {
    ...rest,
    sourceStopped: orNull(sourceStopped),
    sourceLostAt: orNull(sourceLostAt),
  } as Migration;
}

/** Process: the optional times, exit code and failure unset -> null, as REST answers. */
export function processFromProto(value: Message): ProcessView {
  const { migration, lastMovedAt, startedAt, exitCode, failure, args, labels, history, ...rest } =
    value;
  const { user, createdBy, ...others } = rest;
  return {
    ...others,
    ...(typeof user === 'string' && user !== '' ? { user } : {}),
    ...(typeof createdBy === 'string' && createdBy !== '' ? { createdBy } : {}),
    args: Array.isArray(args) ? args : [],
    labels: (labels ?? {}) as Record<string, string>,
    migration: migrationFromProto(migration),
    lastMovedAt: orNull(lastMovedAt),
    startedAt: orNull(startedAt),
    exitCode: orNull(exitCode),
    failure: orNull(failure),
    history: Array.isArray(history) ? history : [],
  } as ProcessView;
}

/** Process load: `agentAddress` unset -> null. */
export function processLoadFromProto(value: Message): ProcessLoadView {
  const { agentAddress, processes, ...rest } = value;
  return {
    ...rest,
    agentAddress: orNull(agentAddress),
    processes: Array.isArray(processes) ? processes : [],
  } as ProcessLoadView;
}
