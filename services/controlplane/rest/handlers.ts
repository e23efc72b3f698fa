/**
 * One handler per operationId of openapi/amalgam.yaml. A handler gets input
 * that already passed the operation's schemas and the caller the transport
 * worked out; it calls ONE service function and maps the result to a status
 * and body. It never touches the store and never checks permissions (the
 * service layer does, for REST and gRPC alike).
 */
import type { Registry } from 'prom-client';
import type {
  AllocateSegmentRequest,
  Caller,
  ControlPlaneRuntime,
  CreateTokenRequest,
  DeviceInventory,
  HeartbeatRequest,
  JoinRequest,
  SetExportRequest,
} from '../../api/contracts.ts';
import { AmalgamError } from '../../core/errors.ts';
import { processRoutes } from '../features/processes/process-routes.ts';

export interface HandlerContext {
  runtime: ControlPlaneRuntime;
  caller: Caller;
  /** Path parameters, schema-checked. */
  params: Record<string, string>;
  /** Query parameters, schema-checked (strings; absent when not given). */
  query: Record<string, string | undefined>;
  /** The request body, schema-checked against the operation's request schema. */
  body: unknown;
  registry: Registry;
  /** Pages that are built once per app: the OpenAPI document and the docs page. */
  pages: { openApiJson: string; docsHtml: string };
}

export interface HandlerResult {
  status: number;
  /** JSON value (checked against the response schema), or a string when `contentType` is set. */
  body?: unknown;
  /** Set for non-JSON answers; the body is then sent as is. */
  contentType?: string;
  /**
   * A streamed answer (with `contentType`): each item is sent as one JSON
   * line as it comes, until the client leaves (then `close()`), the stream
   * ends, or it fails (see app.ts).
   */
  stream?: ItemStream;
}

/** What a streamed answer sends: items as they come; `close()` releases what feeds them. */
export interface ItemStream extends AsyncIterable<unknown> {
  close(): Promise<void>;
}

export const NDJSON_TYPE = 'application/x-ndjson; charset=utf-8';

export type Handler = (context: HandlerContext) => Promise<HandlerResult>;

const json = (status: number, body: unknown): HandlerResult => ({ status, body });
const noContent: HandlerResult = { status: 204 };

/**
 * `{items}` around a list, the same wrapper object for the same list: a
 * service that answers from a cache returns the same list until something
 * changes, and the transport then reuses the serialized body (see app.ts).
 */
const wrappers = new WeakMap<readonly unknown[], { items: readonly unknown[] }>();
function items(list: readonly unknown[]): { items: readonly unknown[] } {
  let wrapper = wrappers.get(list);
  if (!wrapper) {
    wrapper = { items: list };
    wrappers.set(list, wrapper);
  }
  return wrapper;
}

function param(context: HandlerContext, name: string): string {
  const value = context.params[name];
  // The route's params schema makes this unreachable; a handler/document mismatch is a bug.
  if (typeof value !== 'string') throw new Error(`path parameter ${name} is missing`);
  return value;
}

export const handlers: Record<string, Handler> = {
  getCluster: async ({ runtime, caller }) => json(200, await runtime.cluster.info(caller)),

  createToken: async ({ runtime, caller, body }) =>
    json(201, await runtime.tokens.create(caller, body as CreateTokenRequest)),
  listTokens: async ({ runtime, caller }) => json(200, items(await runtime.tokens.list(caller))),
  deleteToken: async (context) => {
    await context.runtime.tokens.delete(context.caller, param(context, 'id'));
    return noContent;
  },

  joinCluster: async ({ runtime, body }) =>
    json(201, await runtime.nodes.join(body as JoinRequest)),
  listNodes: async ({ runtime, caller }) => json(200, items(await runtime.nodes.list(caller))),
  getNode: async (context) =>
    json(200, await context.runtime.nodes.get(context.caller, param(context, 'name'))),
  heartbeatNode: async (context) => {
    const { pageserver, ...load } = context.body as HeartbeatRequest;
    return json(
      200,
      await context.runtime.nodes.heartbeat(
        context.caller,
        param(context, 'name'),
        load,
        pageserver,
      ),
    );
  },
  drainNode: async (context) =>
    json(200, await context.runtime.nodes.drain(context.caller, param(context, 'name'))),
  removeNode: async (context) => {
    await context.runtime.nodes.remove(context.caller, param(context, 'name'));
    return noContent;
  },

  getMemoryLayout: async ({ runtime, caller }) => json(200, await runtime.memory.layout(caller)),
  allocateSegment: async ({ runtime, caller, body }) =>
    json(201, await runtime.memory.allocateSegment(caller, body as AllocateSegmentRequest)),
  listSegments: async ({ runtime, caller }) =>
    json(200, items(await runtime.memory.listSegments(caller))),
  getSegment: async (context) =>
    json(200, await context.runtime.memory.getSegment(context.caller, param(context, 'id'))),
  freeSegment: async (context) => {
    await context.runtime.memory.freeSegment(context.caller, param(context, 'id'));
    return noContent;
  },

  reportDevices: async (context) =>
    json(
      200,
      items(
        await context.runtime.devices.report(
          context.caller,
          param(context, 'name'),
          (context.body as DeviceInventory).devices,
        ),
      ),
    ),
  listDevices: async ({ runtime, caller, query }) =>
    json(200, items(await runtime.devices.list(caller, query.node))),
  getDevice: async (context) =>
    json(
      200,
      await context.runtime.devices.get(
        context.caller,
        param(context, 'node'),
        param(context, 'device'),
      ),
    ),
  setDeviceExport: async (context) =>
    json(
      200,
      await context.runtime.devices.setExport(
        context.caller,
        param(context, 'node'),
        param(context, 'device'),
        (context.body as SetExportRequest).policy,
      ),
    ),

  watchResources: async ({ runtime, caller, query }) => {
    const { prefix, fromRevision } = query;
    // The schema makes prefix present and fromRevision a decimal of at most 15 digits.
    const watch = runtime.watch.open(caller, {
      prefix: prefix ?? '',
      ...(fromRevision === undefined ? {} : { fromRevision: Number(fromRevision) }),
    });
    return { status: 200, contentType: NDJSON_TYPE, stream: watch };
  },

  ...processRoutes,

  getHealth: async () => json(200, { status: 'ok' }),
  getReadiness: async ({ runtime }) => {
    const ready = await runtime.ready().catch(() => false);
    if (!ready) throw new AmalgamError('NO_QUORUM', 'the store did not answer a read');
    return json(200, { status: 'ready' });
  },
  getMetrics: async ({ registry }) => ({
    status: 200,
    body: await registry.metrics(),
    contentType: registry.contentType,
  }),
  getOpenApi: async ({ pages }) => ({
    status: 200,
    body: pages.openApiJson,
    contentType: 'application/json; charset=utf-8',
  }),
  getDocs: async ({ pages }) => ({
    status: 200,
    body: pages.docsHtml,
    contentType: 'text/html; charset=utf-8',
  }),
};
