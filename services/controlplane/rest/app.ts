/**
 * clusterd's REST transport as a fastify instance that never listens:
 * server.ts listens, tests drive it with `app.inject`.
 *
 * Order of work for one request:
 *   1. request id (the caller's `x-request-id` when it is sane, else a UUID),
 *      echoed in the `x-request-id` header and carried by the request logger;
 *   2. onRequest: the caller from the TLS peer certificate (`identify`), and
 *      401 UNAUTHENTICATED for an anonymous caller of any operation whose
 *      `security` needs a certificate (everything under /v1 but join) - before
 *      the body is even read;
 *   3. body parsing (application/json only; limit `bodyLimit`) and schema
 *      validation from openapi/amalgam.yaml: unknown fields are refused, never
 *      stripped, and nothing is coerced;
 *   4. the operation's handler (handlers.ts): one service call;
 *   5. the answer is checked against the document's response schema before
 *      fastify serializes it with the same schema; a streamed answer (the
 *      watch) is sent line by line instead (stream.ts).
 * Any failure becomes an application/problem+json document (problem.ts).
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { ServerOptions as HttpsServerOptions } from 'node:https';
import type { ValidateFunction } from 'ajv';
import Fastify, {
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  type FastifySchema,
  type RouteOptions,
} from 'fastify';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { AmalgamError } from '../../core/errors.ts';
import { createHttpMetrics, registerRuntimeMetrics } from '../metrics.ts';
import type { Caller, ControlPlaneRuntime } from '../service/contracts.ts';
import { requireLiveCredential } from '../service/credentials.ts';
import { renderDocsPage } from './docs-page.ts';
import { type HandlerResult, handlers } from './handlers.ts';
import { ANONYMOUS, callerFromTls } from './identity.ts';
import { type JsonSchema, loadRestApi, type Operation, type RestApi } from './openapi.ts';
import { classify, internalError, sendProblem } from './problem.ts';
import { requestValidatorsFor } from './request-validators.ts';
import { OpenStreams } from './stream.ts';

/** Far above the largest valid request (a join with 64 labels and a CSR is ~30 KiB). */
export const DEFAULT_BODY_LIMIT = 64 * 1024;

/** A request id we are willing to log and echo; anything else is replaced. */
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

export interface BuildAppOptions {
  runtime: ControlPlaneRuntime;
  logger: Logger;
  /** This app's metrics registry (HTTP and cluster-state metrics are added to it). */
  registry: Registry;
  /** Largest request body in bytes; default DEFAULT_BODY_LIMIT. */
  bodyLimit?: number;
  /** Who is calling. Default: the verified TLS client certificate (callerFromTls). Tests inject one. */
  identify?: (request: FastifyRequest) => Caller;
  /** Serve HTTPS with these options (server.ts). Default: plain HTTP, for `inject`. */
  https?: HttpsServerOptions;
}

const JSON_TYPE = 'application/json; charset=utf-8';

/** Response validators per document, compiled once per process (by the contract's one ajv). */
const responseValidators = new WeakMap<RestApi, Map<string, ValidateFunction>>();

function isRef(schema: JsonSchema | undefined): schema is JsonSchema {
  return schema !== undefined && typeof schema.$ref === 'string';
}

/** JSON responses whose schema names a component: validated, then serialized by fastify with it. */
function jsonResponses(op: Operation): { status: number; schema: JsonSchema }[] {
  return op.responses.flatMap((r) =>
    r.status < 300 && r.contentType === 'application/json' && isRef(r.schema)
      ? [{ status: r.status, schema: r.schema }]
      : [],
  );
}

function validatorsFor(api: RestApi): Map<string, ValidateFunction> {
  let validators = responseValidators.get(api);
  if (validators) return validators;
  const { contract } = requestValidatorsFor(api);
  validators = new Map();
  for (const op of api.operations) {
    for (const { status, schema } of jsonResponses(op)) {
      validators.set(`${op.operationId} ${status}`, contract.compile(schema));
    }
  }
  responseValidators.set(api, validators);
  return validators;
}

function requestIdOf(raw: IncomingMessage): string {
  const header = raw.headers['x-request-id'];
  return typeof header === 'string' && REQUEST_ID.test(header) ? header : randomUUID();
}

function isEmptyObject(value: unknown): boolean {
  return (
    typeof value === 'object' &&
    value !== null &&
    !Array.isArray(value) &&
    Object.keys(value).length === 0
  );
}

/** Refuses to start when a handler and an operation of the contract do not match. */
function checkHandlers(api: RestApi): void {
  const missing = api.operations.filter((op) => !handlers[op.operationId]);
  if (missing.length > 0) {
    throw new Error(`no handler for ${missing.map((op) => op.operationId).join(', ')}`);
  }
  const documented = new Set(api.operations.map((op) => op.operationId));
  const undocumented = Object.keys(handlers).filter((id) => !documented.has(id));
  if (undocumented.length > 0) {
    throw new Error(`handlers without an operation in the document: ${undocumented.join(', ')}`);
  }
}

function createFastify(options: BuildAppOptions, api: RestApi): FastifyInstance {
  // With `https` fastify builds an https.Server; the routes and hooks are the same.
  const app = Fastify({
    loggerInstance: options.logger,
    ...(options.https ? { https: options.https } : {}),
    bodyLimit: options.bodyLimit ?? DEFAULT_BODY_LIMIT,
    requestIdHeader: false,
    genReqId: requestIdOf, // logged as `reqId` (fastify's default label)
    // Segment ids are up to 253 characters; longer parameters reach the schema and get a 400.
    routerOptions: { maxParamLength: 1024 },
    // Requests that arrive while closing get a problem document (below), not fastify's own 503.
    return503OnClosing: false,
    // Errors fastify meets before routing (a malformed URL): the request's fault.
    frameworkErrors: (error, request, reply) => {
      sendProblem(reply, request, classify(error) ?? internalError());
    },
  }) as unknown as FastifyInstance;
  // Requests are checked by the contract's validators, the very functions the gRPC door runs.
  app.setValidatorCompiler(requestValidatorsFor(api).fastifyCompiler);
  // The shared schemas also serve fastify's serializer (fast-json-stringify).
  for (const schema of api.sharedSchemas) app.addSchema(schema);
  installJsonParser(app);
  return app;
}

/**
 * application/json only (415 for anything else). An empty body is no body:
 * operations that take none accept a client that still sends the header.
 */
function installJsonParser(app: FastifyInstance): void {
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    const text = typeof body === 'string' ? body : body.toString('utf8');
    if (text === '') done(null, undefined);
    else parseJson(request, text, done);
  });
}

/** Request ids, shutting down, metrics, and every failure as a problem document. */
function installLifecycle(app: FastifyInstance, ctx: RouteContext, registry: Registry): void {
  const metrics = createHttpMetrics(registry);
  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
    // Open streams end now (their clients resume elsewhere) rather than hold the close.
    await ctx.streams.closeAll();
  });
  app.addHook('onRequest', async (request, reply) => {
    reply.header('x-request-id', request.id);
    if (closing) {
      reply.header('connection', 'close');
      throw new AmalgamError('STORE_CLOSED', 'clusterd is shutting down; ask another replica');
    }
  });
  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    metrics.observe(route, request.method, reply.statusCode, reply.elapsedTime / 1000);
  });
  app.setErrorHandler((error, request, reply) => {
    const known = classify(error);
    if (known === undefined || known.code === 'INTERNAL') {
      request.log.error({ err: error }, 'unexpected error');
      return sendProblem(reply, request, internalError());
    }
    const caller = ctx.callers.get(request);
    if (known.http >= 500) {
      request.log.warn({ err: error, code: known.code, caller }, 'request failed');
    } else {
      request.log.info({ code: known.code, detail: known.message, caller }, 'request refused');
    }
    return sendProblem(reply, request, known);
  });
  app.setNotFoundHandler((request, reply) => {
    const path = (request.url.split('?')[0] ?? '').slice(0, 256);
    sendProblem(reply, request, new AmalgamError('NOT_FOUND', `${request.method} ${path}`));
  });
}

/** What every route of one app shares. */
interface RouteContext {
  runtime: ControlPlaneRuntime;
  registry: Registry;
  identify: (request: FastifyRequest) => Caller;
  pages: { openApiJson: string; docsHtml: string };
  callers: WeakMap<FastifyRequest, Caller>;
  /** Validated, serialized answers, by body object (see sendResult). */
  serialized: WeakMap<object, string>;
  responseValidators: Map<string, ValidateFunction>;
  streams: OpenStreams;
}

function schemaFor(op: Operation): FastifySchema {
  const schema: FastifySchema = {};
  if (op.params) schema.params = op.params;
  if (op.query) schema.querystring = op.query;
  if (op.body) schema.body = op.body.schema;
  const responses = jsonResponses(op);
  if (responses.length > 0) {
    schema.response = Object.fromEntries(responses.map((r) => [r.status, r.schema]));
  }
  return schema;
}

function routeFor(op: Operation, ctx: RouteContext): RouteOptions {
  const handler = handlers[op.operationId] as (typeof handlers)[string];
  const statuses = new Set(op.responses.map((r) => r.status));
  return {
    method: op.method,
    url: op.url,
    schema: schemaFor(op),
    config: { operationId: op.operationId },
    onRequest: async (request: FastifyRequest) => {
      const caller = ctx.identify(request);
      ctx.callers.set(request, caller);
      if (op.secured && caller.kind === 'anonymous') throw new AmalgamError('UNAUTHENTICATED');
      if (op.secured) requireLiveCredential(ctx.runtime.users, caller);
    },
    preValidation: async (request: FastifyRequest) => {
      if (!op.body && request.body !== undefined && !isEmptyObject(request.body)) {
        throw new AmalgamError('INVALID_ARGUMENT', 'body: this operation takes no body', {
          field: 'body',
        });
      }
    },
    handler: async (request: FastifyRequest, reply: FastifyReply) => {
      const result = await handler({
        runtime: ctx.runtime,
        caller: ctx.callers.get(request) ?? ANONYMOUS,
        params: (request.params ?? {}) as Record<string, string>,
        query: op.query ? ((request.query ?? {}) as Record<string, string>) : {},
        body: request.body,
        registry: ctx.registry,
        pages: ctx.pages,
      });
      if (!statuses.has(result.status)) {
        throw new Error(`${op.operationId} answered ${result.status}, not in the document`);
      }
      return sendResult(op, ctx, request, reply, result);
    },
  };
}

/** A handler's answer on the wire: streamed, raw, or JSON checked against the document. */
function sendResult(
  op: Operation,
  ctx: RouteContext,
  request: FastifyRequest,
  reply: FastifyReply,
  result: HandlerResult,
) {
  if (result.stream !== undefined) {
    const contentType = result.contentType ?? 'application/x-ndjson';
    return ctx.streams.send(request, reply, result.status, contentType, result.stream);
  }
  if (result.contentType !== undefined) {
    return reply.code(result.status).type(result.contentType).send(result.body);
  }
  if (result.body === undefined) return reply.code(result.status).send();
  const body = result.body;
  // A body object the service hands out again (a cached list) was already
  // checked and serialized: reuse the bytes.
  const isObject = typeof body === 'object' && body !== null;
  const cached = isObject ? ctx.serialized.get(body) : undefined;
  if (cached !== undefined) return reply.code(result.status).type(JSON_TYPE).send(cached);
  const validate = ctx.responseValidators.get(`${op.operationId} ${result.status}`);
  if (validate && !validate(body)) {
    request.log.error(
      { operationId: op.operationId, status: result.status, errors: validate.errors },
      'the answer does not match its schema in the document',
    );
    throw new Error(`${op.operationId} answer does not match its schema`);
  }
  reply.code(result.status);
  const text = String(reply.serialize(body)); // JSON routes serialize to a string
  if (isObject) ctx.serialized.set(body, text);
  return reply.type(JSON_TYPE).send(text);
}

export function buildApp(options: BuildAppOptions): FastifyInstance {
  const api = loadRestApi();
  checkHandlers(api);
  const ctx: RouteContext = {
    runtime: options.runtime,
    registry: options.registry,
    identify: options.identify ?? callerFromTls,
    pages: { openApiJson: api.documentJson, docsHtml: renderDocsPage(api) },
    callers: new WeakMap(),
    serialized: new WeakMap(),
    responseValidators: validatorsFor(api),
    streams: new OpenStreams(),
  };
  const app = createFastify(options, api);
  installLifecycle(app, ctx, options.registry);
  registerRuntimeMetrics(options.registry, options.runtime);
  for (const op of api.operations) app.route(routeFor(op, ctx));
  return app;
}
