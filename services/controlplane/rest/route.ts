/**
 * What a REST handler is: it gets input that already passed its operation's
 * schemas (openapi/amalgam.yaml) and the caller the transport worked out,
 * calls ONE service function and maps the result to a status and body. It
 * never touches the store and never checks permissions (the service layer
 * does, for REST and gRPC alike). Each feature's `*-routes.ts` holds its
 * handlers; rest/handlers.ts lists them.
 */
import type { Registry } from 'prom-client';
import type { Caller, ControlPlaneRuntime } from '../service/contracts.ts';

export interface HandlerContext {
  runtime: ControlPlaneRuntime;
  caller: Caller;
  /** The client's address (what join's rate limit counts by). */
  source: string;
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

/** Handlers by operationId. */
export type Routes = Record<string, Handler>;

export const json = (status: number, body: unknown): HandlerResult => ({ status, body });
export const noContent: HandlerResult = { status: 204 };

/**
 * `{items}` around a list, the same wrapper object for the same list: a
 * service that answers from a cache returns the same list until something
 * changes, and the transport then reuses the serialized body (see app.ts).
 */
const wrappers = new WeakMap<readonly unknown[], { items: readonly unknown[] }>();
export function items(list: readonly unknown[]): { items: readonly unknown[] } {
  let wrapper = wrappers.get(list);
  if (!wrapper) {
    wrapper = { items: list };
    wrappers.set(list, wrapper);
  }
  return wrapper;
}

export function param(context: HandlerContext, name: string): string {
  const value = context.params[name];
  // The route's params schema makes this unreachable; a handler/document mismatch is a bug.
  if (typeof value !== 'string') throw new Error(`path parameter ${name} is missing`);
  return value;
}
