/**
 * Every failure as an RFC 9457 problem document with a catalogue code.
 *
 * `problemFrom` is the one place that decides how an error becomes an HTTP
 * answer: an AmalgamError keeps its code; fastify's own errors (schema
 * validation, body parsing, limits, content types) map to INVALID_ARGUMENT,
 * PAYLOAD_TOO_LARGE or UNSUPPORTED_MEDIA_TYPE; anything else is INTERNAL, and
 * is the only kind the caller must log as a bug.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { AmalgamError, ERRORS, type ErrorCode, isAmalgamError } from '../../core/errors.ts';

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';
export const PROBLEM_TYPE_BASE = 'https://amalgam.dev/errors/';

/** Members of the document itself; an error's details never overwrite them. */
const RESERVED = new Set(['type', 'title', 'status', 'code', 'detail', 'instance', 'requestId']);

export interface Problem {
  type: string;
  title: string;
  status: number;
  code: ErrorCode;
  detail: string;
  instance?: string;
  requestId: string;
  [detail: string]: unknown;
}

/** What an ajv error looks like, as far as naming the field goes. */
interface ValidationIssue {
  keyword?: string;
  instancePath?: string;
  message?: string;
  params?: Record<string, unknown>;
}

/** `/capacity/cpus` -> `capacity.cpus`, `/roles/0` -> `roles[0]`, `/labels/a~1b` -> `labels["a/b"]`. */
export function fieldFromPointer(pointer: string): string {
  let field = '';
  for (const raw of pointer.split('/').slice(1)) {
    const part = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (/^\d+$/.test(part)) field += `[${part}]`;
    else if (/^[A-Za-z_$][\w$]*$/.test(part)) field += field === '' ? part : `.${part}`;
    else field += `[${JSON.stringify(part)}]`;
  }
  return field;
}

function joinField(base: string, name: string): string {
  return fieldFromPointer(`${base}/${name.replace(/~/g, '~0').replace(/\//g, '~1')}`);
}

/** The field an ajv error is about: the missing or unknown property when there is one. */
export function fieldOfIssue(issue: ValidationIssue, context: string | undefined): string {
  const path = issue.instancePath ?? '';
  const params = issue.params ?? {};
  let field = fieldFromPointer(path);
  if (issue.keyword === 'required' && typeof params.missingProperty === 'string') {
    field = joinField(path, params.missingProperty);
  } else if (
    issue.keyword === 'additionalProperties' &&
    typeof params.additionalProperty === 'string'
  ) {
    field = joinField(path, params.additionalProperty);
  } else if (issue.keyword === 'propertyNames' && typeof params.propertyName === 'string') {
    field = joinField(path, params.propertyName);
  }
  // A body that is not an object at all (or a path parameter) has no pointer.
  return field === '' ? (context === 'body' || context === undefined ? 'body' : context) : field;
}

export function validationError(error: {
  validation?: ValidationIssue[];
  validationContext?: string;
}): AmalgamError {
  const issues = error.validation ?? [];
  // For oneOf/anyOf ajv reports each branch's failure first, then the
  // combinator's; a branch's complaint would name the wrong thing.
  const combinator = issues.find((i) => i.keyword === 'oneOf' || i.keyword === 'anyOf');
  const issue = combinator ?? issues[0] ?? {};
  const field = fieldOfIssue(issue, error.validationContext);
  let reason = issue.message ?? 'is not valid';
  if (issue.keyword === 'additionalProperties') reason = 'is not a known field';
  else if (combinator) reason = 'is none of the forms the API documents';
  else if (issue.keyword === 'required') reason = 'is required';
  return new AmalgamError('INVALID_ARGUMENT', `${field} ${reason}`, { field });
}

/** Error codes fastify uses for request parsing, and what they are in the catalogue. */
const FASTIFY_CODES: Record<string, (error: Error) => AmalgamError> = {
  FST_ERR_CTP_BODY_TOO_LARGE: () => new AmalgamError('PAYLOAD_TOO_LARGE'),
  FST_ERR_CTP_INVALID_MEDIA_TYPE: () => new AmalgamError('UNSUPPORTED_MEDIA_TYPE'),
  FST_ERR_CTP_INVALID_JSON_BODY: () =>
    new AmalgamError('INVALID_ARGUMENT', 'body: not valid JSON', { field: 'body' }),
  FST_ERR_CTP_EMPTY_JSON_BODY: () =>
    new AmalgamError('INVALID_ARGUMENT', 'body: empty', { field: 'body' }),
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: () =>
    new AmalgamError('INVALID_ARGUMENT', 'content-length does not match the body', {
      field: 'content-length',
    }),
};

/**
 * The AmalgamError an error stands for, or undefined when it is not one the
 * client caused (a bug: answer INTERNAL and log it).
 */
export function classify(error: unknown): AmalgamError | undefined {
  if (isAmalgamError(error)) return error;
  if (!(error instanceof Error)) return undefined;
  const fastifyError = error as Error & {
    code?: string;
    statusCode?: number;
    validation?: ValidationIssue[];
    validationContext?: string;
  };
  if (Array.isArray(fastifyError.validation)) return validationError(fastifyError);
  const mapped = fastifyError.code ? FASTIFY_CODES[fastifyError.code] : undefined;
  if (mapped) return mapped(error);
  // Other client errors fastify or Node detect before a route runs (a bad URL,
  // a malformed header): the request is at fault, so it is a 4xx.
  const status = fastifyError.statusCode;
  if (typeof status === 'number' && status >= 400 && status < 500) {
    if (status === 404) return new AmalgamError('NOT_FOUND');
    if (status === 413) return new AmalgamError('PAYLOAD_TOO_LARGE');
    if (status === 415) return new AmalgamError('UNSUPPORTED_MEDIA_TYPE');
    return new AmalgamError('INVALID_ARGUMENT', error.message, { field: 'request' });
  }
  return undefined;
}

export function problemFrom(error: AmalgamError, request: FastifyRequest): Problem {
  const problem: Problem = {
    type: `${PROBLEM_TYPE_BASE}${error.code}`,
    title: ERRORS[error.code].message,
    status: error.http,
    code: error.code,
    detail: error.message,
    instance: request.url.split('?')[0] ?? request.url,
    requestId: String(request.id),
  };
  for (const [key, value] of Object.entries(error.details)) {
    if (!RESERVED.has(key) && value !== undefined) problem[key] = value;
  }
  return problem;
}

/** The INTERNAL problem: says nothing about the error itself, only where it was logged. */
export function internalError(): AmalgamError {
  return new AmalgamError('INTERNAL');
}

export function sendProblem(
  reply: FastifyReply,
  request: FastifyRequest,
  error: AmalgamError,
): FastifyReply {
  const problem = problemFrom(error, request);
  let body: string;
  try {
    body = JSON.stringify(problem);
  } catch {
    // Details that do not serialize (a cycle, a BigInt) must not turn a 4xx into a crash.
    const { type, title, status, code, detail, instance, requestId } = problem;
    body = JSON.stringify({ type, title, status, code, detail, instance, requestId });
  }
  if (error.code === 'NO_QUORUM' || error.code === 'CONTENDED') reply.header('retry-after', '1');
  if (error.code === 'RATE_LIMITED') {
    const seconds = Number(error.details.retryAfterSeconds);
    reply.header('retry-after', String(Number.isSafeInteger(seconds) && seconds > 0 ? seconds : 1));
  }
  // Also for errors met before the onRequest hook that sets it (a malformed URL).
  reply.header('x-request-id', problem.requestId);
  return reply.code(problem.status).type(PROBLEM_CONTENT_TYPE).send(body);
}
