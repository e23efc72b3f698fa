/**
 * The REST contract, read from `openapi/amalgam.yaml` (the source of truth) and
 * turned into what the transport needs: one `Operation` per method and path,
 * with its JSON Schemas for params, body and responses, the error codes it
 * documents, and whether it needs a client certificate.
 *
 * Why not fastify-openapi-glue: it would own route registration and handler
 * naming, and we would still need our own pass over the document for the
 * caller rules (x-amalgam-caller), the documented error codes and the bad-input
 * suites. The document is small and uses one `$ref` style, so resolving it here
 * is a few lines and leaves fastify's own ajv and fast-json-stringify doing the
 * validation and serialization.
 *
 * Schemas: every `components.schemas.X` becomes a shared schema with `$id: X`,
 * and every `#/components/schemas/X` reference becomes `X#`, so fastify (ajv and
 * fast-json-stringify) and the response validator resolve them by id.
 */
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';

export type JsonSchema = Record<string, unknown>;

/** Who the service layer lets call an operation (the document's `x-amalgam-caller`). */
export type CallerRule = 'anonymous' | 'token' | 'member' | 'admin' | 'self';

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

export interface OperationResponse {
  status: number;
  /** The media type of the response body, if it has one. */
  contentType: string | undefined;
  /** The body schema with references rewritten to shared-schema ids. */
  schema: JsonSchema | undefined;
  /** For problem responses: the error codes the operation documents for this status. */
  errorCodes: string[];
}

export interface Operation {
  operationId: string;
  method: HttpMethod;
  /** As written in the document: `/v1/nodes/{name}`. */
  path: string;
  /** As fastify routes it: `/v1/nodes/:name`. */
  url: string;
  caller: CallerRule;
  /** True when the effective `security` asks for a client certificate. */
  secured: boolean;
  /** Object schema of the path parameters, or undefined when there are none. */
  params: JsonSchema | undefined;
  /** Example value of each path parameter, from the document. */
  paramExamples: Record<string, string>;
  /**
   * Object schema of the query parameters (each a string: nothing is coerced),
   * or undefined when the operation takes none (its query string is ignored).
   */
  query: JsonSchema | undefined;
  /** The `application/json` request body, or undefined when the operation takes none. */
  body: { schema: JsonSchema; required: boolean; example: unknown } | undefined;
  responses: OperationResponse[];
}

export interface RestApi {
  /** The document as parsed from YAML (references untouched): what /openapi.json serves. */
  document: Record<string, unknown>;
  /** `JSON.stringify(document)`, computed once. */
  documentJson: string;
  /** `components.schemas`, each with `$id` set to its name and references rewritten. */
  sharedSchemas: JsonSchema[];
  operations: Operation[];
}

export const OPENAPI_PATH = new URL('../../../openapi/amalgam.yaml', import.meta.url);

const METHODS: readonly HttpMethod[] = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'];
const CALLER_RULES: readonly CallerRule[] = ['anonymous', 'token', 'member', 'admin', 'self'];
const SCHEMA_REF = '#/components/schemas/';

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function fail(where: string, message: string): never {
  throw new Error(`${OPENAPI_PATH.pathname}: ${where}: ${message}`);
}

/** Deep copy with every `#/components/schemas/X` reference turned into `X#`. */
export function rewriteRefs(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(rewriteRefs);
  if (!isObject(value)) return value;
  const out: Record<string, unknown> = {};
  for (const [key, child] of Object.entries(value)) {
    if (key === '$ref' && typeof child === 'string') {
      if (!child.startsWith(SCHEMA_REF))
        fail(child, 'only #/components/schemas/ refs may appear in a schema');
      out[key] = `${child.slice(SCHEMA_REF.length)}#`;
    } else {
      out[key] = rewriteRefs(child);
    }
  }
  return out;
}

/** Follows a `$ref` to another component (parameters, responses, request bodies). */
function deref(
  document: Record<string, unknown>,
  value: unknown,
  where: string,
): Record<string, unknown> {
  let current = value;
  for (let hops = 0; isObject(current) && typeof current.$ref === 'string'; hops++) {
    if (hops > 8) fail(where, 'reference loop');
    const ref = current.$ref;
    if (!ref.startsWith('#/')) fail(where, `only local references are supported: ${ref}`);
    let target: unknown = document;
    for (const part of ref.slice(2).split('/')) {
      target = isObject(target) ? target[part.replace(/~1/g, '/').replace(/~0/g, '~')] : undefined;
    }
    if (target === undefined) fail(where, `dangling reference ${ref}`);
    current = target;
  }
  if (!isObject(current)) fail(where, 'an object is required');
  return current;
}

/** The codes of `code.enum` in a problem response schema (`allOf: [Problem, {code: {enum}}]`). */
function problemCodes(schema: unknown): string[] {
  const codes: string[] = [];
  const visit = (node: unknown) => {
    if (Array.isArray(node)) {
      node.forEach(visit);
      return;
    }
    if (!isObject(node)) return;
    const properties = node.properties;
    if (isObject(properties) && isObject(properties.code) && Array.isArray(properties.code.enum)) {
      for (const code of properties.code.enum) if (typeof code === 'string') codes.push(code);
    }
    for (const key of ['allOf', 'anyOf', 'oneOf']) visit(node[key]);
  };
  visit(schema);
  return codes;
}

type Document = Record<string, unknown>;
type Parameter = Record<string, unknown>;

/** The caller rule and whether the effective `security` asks for a client certificate. */
function readAccess(document: Document, op: Document, where: string) {
  const caller = op['x-amalgam-caller'];
  if (!CALLER_RULES.includes(caller as CallerRule)) {
    fail(where, `x-amalgam-caller must be one of ${CALLER_RULES.join(', ')}`);
  }
  const security = op.security ?? document.security ?? [];
  if (!Array.isArray(security)) fail(where, 'security must be a list');
  const secured =
    security.length > 0 && !security.some((s) => isObject(s) && Object.keys(s).length === 0);
  return { caller: caller as CallerRule, secured };
}

/** Path and query parameters by name: path-item level first, operation level overrides. */
function collectParameters(document: Document, pathItem: Document, op: Document, where: string) {
  const path = new Map<string, Parameter>();
  const query = new Map<string, Parameter>();
  for (const raw of [
    ...((pathItem.parameters as unknown[]) ?? []),
    ...((op.parameters as unknown[]) ?? []),
  ]) {
    const parameter = deref(document, raw, where);
    if (parameter.in === 'path') path.set(String(parameter.name), parameter);
    else if (parameter.in === 'query') query.set(String(parameter.name), parameter);
    else fail(where, `only path and query parameters are supported (${String(parameter.name)})`);
  }
  return { path, query };
}

/** The object schema of the path parameters (every `{name}` declared once) and their examples. */
function pathParamsSchema(path: string, parameters: Map<string, Parameter>, where: string) {
  const names = [...path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1] as string);
  if (names.length !== parameters.size || !names.every((n) => parameters.has(n))) {
    fail(where, `path parameters ${names.join(', ')} must each be declared once`);
  }
  const paramExamples: Record<string, string> = {};
  if (names.length === 0) return { params: undefined, paramExamples };
  const properties: Record<string, unknown> = {};
  for (const name of names) {
    const parameter = parameters.get(name) as Parameter;
    properties[name] = rewriteRefs(parameter.schema ?? { type: 'string' });
    if (typeof parameter.example === 'string') paramExamples[name] = parameter.example;
  }
  const params: JsonSchema = {
    type: 'object',
    required: names,
    additionalProperties: false,
    properties,
  };
  return { params, paramExamples };
}

/** The object schema of the query parameters (strings only: nothing is coerced). */
function querySchema(parameters: Map<string, Parameter>, where: string): JsonSchema | undefined {
  if (parameters.size === 0) return undefined;
  const properties: Record<string, unknown> = {};
  const required: string[] = [];
  for (const [name, parameter] of parameters) {
    const schema = rewriteRefs(parameter.schema ?? { type: 'string' }) as JsonSchema;
    if (schema.type !== 'string') fail(where, `query parameter ${name} must be a string`);
    properties[name] = schema;
    if (parameter.required === true) required.push(name);
  }
  return { type: 'object', required, additionalProperties: false, properties };
}

function readBody(document: Document, op: Document, where: string): Operation['body'] {
  if (op.requestBody === undefined) return undefined;
  const requestBody = deref(document, op.requestBody, `${where} requestBody`);
  const content = requestBody.content;
  const json = isObject(content) ? content['application/json'] : undefined;
  if (!isObject(json) || Object.keys(content as object).length !== 1) {
    fail(where, 'a request body must be application/json only');
  }
  return {
    schema: rewriteRefs(json.schema) as JsonSchema,
    required: requestBody.required === true,
    example: json.example,
  };
}

function readResponse(document: Document, raw: unknown, statusText: string, where: string) {
  const status = Number(statusText);
  if (!Number.isInteger(status) || status < 100 || status > 599) {
    fail(where, `response ${statusText}: only explicit status codes are supported`);
  }
  const response = deref(document, raw, `${where} ${statusText}`);
  const content = response.content;
  const [entry] = isObject(content) ? Object.entries(content) : [];
  const contentType = entry?.[0];
  const mediaSchema = isObject(entry?.[1]) ? entry[1].schema : undefined;
  const errorCodes = status >= 400 ? problemCodes(mediaSchema) : [];
  if (status >= 400 && (contentType !== 'application/problem+json' || errorCodes.length === 0)) {
    fail(where, `response ${status} must be application/problem+json and list its codes`);
  }
  const schema = mediaSchema === undefined ? undefined : (rewriteRefs(mediaSchema) as JsonSchema);
  return { status, contentType, schema, errorCodes } satisfies OperationResponse;
}

function readOperation(
  document: Document,
  path: string,
  method: HttpMethod,
  pathItem: Document,
  op: Document,
): Operation {
  const where = `${method} ${path}`;
  const operationId = op.operationId;
  if (typeof operationId !== 'string' || operationId === '') fail(where, 'operationId is required');
  const access = readAccess(document, op, where);
  const parameters = collectParameters(document, pathItem, op, where);
  const pathParams = pathParamsSchema(path, parameters.path, where);
  const query = querySchema(parameters.query, where);
  const body = readBody(document, op, where);
  if (!isObject(op.responses)) fail(where, 'responses are required');
  const responses = Object.entries(op.responses).map(([status, raw]) =>
    readResponse(document, raw, status, where),
  );
  return {
    operationId,
    method,
    path,
    url: path.replace(/\{([^}]+)\}/g, ':$1'),
    ...access,
    ...pathParams,
    query,
    body,
    responses,
  };
}

export function parseRestApi(text: string): RestApi {
  const document: unknown = parse(text);
  if (
    !isObject(document) ||
    typeof document.openapi !== 'string' ||
    !document.openapi.startsWith('3.1')
  ) {
    fail('openapi', 'an OpenAPI 3.1 document is required');
  }
  const components = isObject(document.components) ? document.components : {};
  const schemas = isObject(components.schemas) ? components.schemas : {};
  const sharedSchemas = Object.entries(schemas).map(([name, schema]) => ({
    $id: name,
    ...(rewriteRefs(schema) as JsonSchema),
  }));

  const operations: Operation[] = [];
  const seen = new Set<string>();
  if (!isObject(document.paths)) fail('paths', 'required');
  for (const [path, item] of Object.entries(document.paths)) {
    if (!isObject(item)) fail(path, 'a path item object is required');
    for (const method of METHODS) {
      const op = item[method.toLowerCase()];
      if (op === undefined) continue;
      if (!isObject(op)) fail(`${method} ${path}`, 'an operation object is required');
      const operation = readOperation(document, path, method, item, op);
      if (seen.has(operation.operationId))
        fail(path, `duplicate operationId ${operation.operationId}`);
      seen.add(operation.operationId);
      operations.push(operation);
    }
  }
  return { document, documentJson: JSON.stringify(document), sharedSchemas, operations };
}

let cached: RestApi | undefined;

/** The contract from openapi/amalgam.yaml, read once per process. */
export function loadRestApi(): RestApi {
  cached ??= parseRestApi(readFileSync(OPENAPI_PATH, 'utf8'));
  return cached;
}
