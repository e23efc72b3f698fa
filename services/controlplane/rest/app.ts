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
import { Ajv, type ValidateFunction } from 'ajv';
import formatsPlugin from 'ajv-formats';
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
import { renderDocsPage } from './docs-page.ts';
import { handlers } from './handlers.ts';
import { ANONYMOUS, callerFromTls } from './identity.ts';
import { type JsonSchema, loadRestApi, type Operation, type RestApi } from './openapi.ts';
import { classify, internalError, sendProblem } from './problem.ts';
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

// ajv-formats is CommonJS with `exports.default`; under NodeNext its default import is the module.
const addFormats = ((formatsPlugin as unknown as { default?: typeof formatsPlugin }).default ??
  formatsPlugin) as unknown as (ajv: Ajv) => Ajv;

const JSON_TYPE = 'application/json; charset=utf-8';

/** Response validators per document, compiled once per process. */
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
  const ajv = new Ajv({ strict: true, allErrors: false, coerceTypes: false, useDefaults: false });
  addFormats(ajv);
  for (const schema of api.sharedSchemas) ajv.addSchema(schema);
  validators = new Map();
  for (const op of api.operations) {
    for (const { status, schema } of jsonResponses(op)) {
      validators.set(`${op.operationId} ${status}`, ajv.compile(schema));
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

export function buildApp(options: BuildAppOptions): FastifyInstance {
  const api = loadRestApi();
  const { runtime, registry } = options;
  const identify = options.identify ?? callerFromTls;
  const validators = validatorsFor(api);
  const pages = { openApiJson: api.documentJson, docsHtml: renderDocsPage(api) };
  const callers = new WeakMap<FastifyRequest, Caller>();
  /** Validated, serialized answers, by body object (see the route handler). */
  const serialized = new WeakMap<object, string>();

  const missing = api.operations.filter((op) => !handlers[op.operationId]);
  if (missing.length > 0) {
    throw new Error(`no handler for ${missing.map((op) => op.operationId).join(', ')}`);
  }
  const documented = new Set(api.operations.map((op) => op.operationId));
  const undocumented = Object.keys(handlers).filter((id) => !documented.has(id));
  if (undocumented.length > 0) {
    throw new Error(`handlers without an operation in the document: ${undocumented.join(', ')}`);
  }

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
    ajv: {
      customOptions: {
        removeAdditional: false,
        coerceTypes: false,
        useDefaults: false,
        allErrors: false,
      },
    },
    // Errors fastify meets before routing (a malformed URL): the request's fault.
    frameworkErrors: (error, request, reply) => {
      sendProblem(reply, request, classify(error) ?? internalError());
    },
  }) as unknown as FastifyInstance;

  for (const schema of api.sharedSchemas) app.addSchema(schema);

  // application/json only (415 for anything else). An empty body is no body:
  // operations that take none accept a client that still sends the header.
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    const text = typeof body === 'string' ? body : body.toString('utf8');
    if (text === '') done(null, undefined);
    else parseJson(request, text, done);
  });

  const metrics = createHttpMetrics(registry);
  registerRuntimeMetrics(registry, runtime);

  let closing = false;
  const streams = new OpenStreams();
  app.addHook('preClose', async () => {
    closing = true;
    // Open streams end now (their clients resume elsewhere) rather than hold the close.
    await streams.closeAll();
  });
  app.addHook('onRequest', async (request, reply) => {
    reply.header('x-request-id', request.id);
    if (closing) {
      reply.header('connection', 'close');
      throw new AmalgamError('STORE_CLOSED', 'clusterd is shutting down; ask another replica');
    }
  });
  app.addHook('onResponse', async (request, reply) => {
    metrics.observe(
      request.routeOptions.url ?? 'unmatched',
      request.method,
      reply.statusCode,
      reply.elapsedTime / 1000,
    );
  });

  app.setErrorHandler((error, request, reply) => {
    const known = classify(error);
    if (known === undefined || known.code === 'INTERNAL') {
      request.log.error({ err: error }, 'unexpected error');
      return sendProblem(reply, request, internalError());
    }
    const caller = callers.get(request);
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

  for (const op of api.operations) {
    app.route(routeFor(op));
  }

  function routeFor(op: Operation): RouteOptions {
    const handler = handlers[op.operationId] as (typeof handlers)[string];
    const schema: FastifySchema = {};
    if (op.params) schema.params = op.params;
    if (op.query) schema.querystring = op.query;
    if (op.body) schema.body = op.body.schema;
    const responses = jsonResponses(op);
    if (responses.length > 0) {
      schema.response = Object.fromEntries(responses.map((r) => [r.status, r.schema]));
    }
    const statuses = new Set(op.responses.map((r) => r.status));

    return {
      method: op.method,
      url: op.url,
      schema,
      config: { operationId: op.operationId },
      onRequest: async (request: FastifyRequest) => {
        const caller = identify(request);
        callers.set(request, caller);
        if (op.secured && caller.kind === 'anonymous') throw new AmalgamError('UNAUTHENTICATED');
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
          runtime,
          caller: callers.get(request) ?? ANONYMOUS,
          params: (request.params ?? {}) as Record<string, string>,
          query: op.query ? ((request.query ?? {}) as Record<string, string>) : {},
          body: request.body,
          registry,
          pages,
        });
        if (!statuses.has(result.status)) {
          throw new Error(`${op.operationId} answered ${result.status}, not in the document`);
        }
        if (result.stream !== undefined) {
          const contentType = result.contentType ?? 'application/x-ndjson';
          return streams.send(request, reply, result.status, contentType, result.stream);
        }
        if (result.contentType !== undefined) {
          return reply.code(result.status).type(result.contentType).send(result.body);
        }
        if (result.body === undefined) return reply.code(result.status).send();
        const body = result.body;
        // A body object the service hands out again (a cached list) was already
        // checked and serialized: reuse the bytes.
        const cached = typeof body === 'object' && body !== null ? serialized.get(body) : undefined;
        if (cached !== undefined) {
          return reply.code(result.status).type(JSON_TYPE).send(cached);
        }
        const validate = validators.get(`${op.operationId} ${result.status}`);
        if (validate && !validate(body)) {
          request.log.error(
            { operationId: op.operationId, status: result.status, errors: validate.errors },
            'the answer does not match its schema in the document',
          );
          throw new Error(`${op.operationId} answer does not match its schema`);
        }
        reply.code(result.status);
        const text = String(reply.serialize(body)); // JSON routes serialize to a string
        if (typeof body === 'object' && body !== null) serialized.set(body, text);
        return reply.type(JSON_TYPE).send(text);
      },
    };
  }

  return app;
}
