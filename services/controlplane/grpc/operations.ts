/**
 * Which operation of openapi/amalgam.yaml each RPC of openapi/amalgam.proto
 * is, and how its decoded message maps to that operation's path parameters,
 * query and JSON body. server.ts validates every unary call with the REST
 * operation's schemas through this map, so a limit written once in the YAML
 * holds on both doors.
 *
 * Decoded messages (grpc-proto.ts): unset `optional` scalars are absent,
 * unset messages are null, unset repeated fields and maps are empty. proto3
 * cannot tell an empty list from an unset one, so an empty top-level list or
 * map counts as absent (as the handlers read it) unless the body requires it.
 */
import type { RequestParts } from '../rest/request-validators.ts';

type Message = Record<string, unknown>;

export interface GrpcOperation {
  operationId: string;
  /** The decoded message as the REST operation's parts. */
  toRest(request: Message): RequestParts;
}

function isObject(value: unknown): value is Message {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** proto3 has no null: a null (unset) member is absent, at every depth. */
function withoutNulls(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutNulls);
  if (!isObject(value)) return value;
  const out: Message = {};
  for (const [key, child] of Object.entries(value)) {
    if (child !== null && child !== undefined) out[key] = withoutNulls(child);
  }
  return out;
}

const isEmpty = (value: unknown) =>
  (Array.isArray(value) && value.length === 0) ||
  (isObject(value) && Object.keys(value).length === 0);

/**
 * The JSON body: every field but the path parameters, nulls dropped, and
 * empty top-level lists and maps dropped unless named in `keep`.
 */
function bodyOf(request: Message, omit: readonly string[], keep: readonly string[] = []): Message {
  const out: Message = {};
  for (const [key, value] of Object.entries(withoutNulls(request) as Message)) {
    if (omit.includes(key)) continue;
    if (isEmpty(value) && !keep.includes(key)) continue;
    out[key] = value;
  }
  return out;
}

/** Path parameters as the URL spells them: strings (a cpid in decimal). */
function paramsOf(request: Message, names: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of names) {
    const value = request[name];
    out[name] = typeof value === 'number' ? String(value) : typeof value === 'string' ? value : '';
  }
  return out;
}

/** No params, no body (a get or list of everything). */
const bare = (operationId: string): GrpcOperation => ({ operationId, toRest: () => ({}) });

/** Only path parameters. */
const byParams = (operationId: string, ...names: string[]): GrpcOperation => ({
  operationId,
  toRest: (r) => ({ params: paramsOf(r, names) }),
});

/** Path parameters (possibly none) and the rest of the message as the body. */
const withBody = (
  operationId: string,
  names: string[] = [],
  keep: string[] = [],
): GrpcOperation => ({
  operationId,
  toRest: (r) => ({
    ...(names.length > 0 ? { params: paramsOf(r, names) } : {}),
    body: bodyOf(r, names, keep),
  }),
});

/** `Service/Method` -> its operation. Watch (streaming) is checked by the watch service. */
export const GRPC_OPERATIONS: Readonly<Record<string, GrpcOperation>> = {
  'Cluster/GetInfo': bare('getCluster'),
  'Tokens/Create': withBody('createToken'),
  'Tokens/List': bare('listTokens'),
  'Tokens/Delete': byParams('deleteToken', 'id'),
  'Users/Create': withBody('createUser'),
  'Users/List': bare('listUsers'),
  'Users/Revoke': byParams('revokeUser', 'name'),
  'Nodes/Join': withBody('joinCluster'),
  'Nodes/List': bare('listNodes'),
  'Nodes/Get': byParams('getNode', 'name'),
  // REST's heartbeat body is the load report's fields flat, plus the page server.
  'Nodes/Heartbeat': {
    operationId: 'heartbeatNode',
    toRest: (r) => ({
      params: paramsOf(r, ['name']),
      body: bodyOf({ ...(isObject(r.load) ? r.load : {}), pageserver: r.pageserver }, []),
    }),
  },
  'Nodes/Drain': byParams('drainNode', 'name'),
  'Nodes/Remove': byParams('removeNode', 'name'),
  'Memory/GetLayout': bare('getMemoryLayout'),
  'Memory/AllocateSegment': withBody('allocateSegment'),
  'Memory/ListSegments': bare('listSegments'),
  'Memory/GetSegment': byParams('getSegment', 'id'),
  'Memory/FreeSegment': byParams('freeSegment', 'id'),
  'Devices/List': {
    operationId: 'listDevices',
    toRest: (r) => {
      const querystring: Record<string, string> = {};
      if (typeof r.node === 'string') querystring.node = r.node;
      return { querystring };
    },
  },
  'Devices/Get': byParams('getDevice', 'node', 'device'),
  'Devices/Report': withBody('reportDevices', ['name'], ['devices']),
  'Devices/SetExport': withBody('setDeviceExport', ['node', 'device']),
  'Processes/ClaimPidBlock': withBody('claimPidBlock'),
  'Processes/ListPidBlocks': bare('listPidBlocks'),
  'Processes/Create': withBody('createProcess'),
  'Processes/List': bare('listProcesses'),
  'Processes/Get': byParams('getProcess', 'cpid'),
  'Processes/Kill': byParams('killProcess', 'cpid'),
  'Processes/Migrate': withBody('migrateProcess', ['cpid']),
  'Processes/Report': withBody('reportProcess', ['name', 'cpid']),
  'Processes/ReportLoad': withBody('reportProcessLoad', ['name'], ['processes']),
  'Processes/ListLoads': bare('listProcessLoads'),
};
