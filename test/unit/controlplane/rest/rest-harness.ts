/**
 * The REST app over the real service layer on an embedded store in a temp
 * directory, driven with `inject` (no socket). The caller is given per request
 * in the `x-test-caller` header (`admin`, `node:<name>`, `user:<name>;<role>;<keyHash>`,
 * absent = anonymous),
 * through buildApp's `identify` option: what a verified client certificate
 * would have said.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type {
  FastifyInstance,
  FastifyRequest,
  InjectOptions,
  LightMyRequestResponse as Response,
} from 'fastify';
import { type Logger, pino } from 'pino';
import { Registry } from 'prom-client';
import type { Test } from 'tap';
import type { JoinResult } from '../../../../services/api/contracts.ts';
import { createControlPlane } from '../../../../services/controlplane/control-plane.ts';
import { buildApp } from '../../../../services/controlplane/rest/app.ts';
import {
  type JsonSchema,
  loadRestApi,
  type Operation,
} from '../../../../services/controlplane/rest/openapi.ts';
import type {
  Caller,
  ControlPlaneRuntime,
} from '../../../../services/controlplane/service/contracts.ts';
import { ERRORS } from '../../../../services/core/errors.ts';
import { createClusterCa, createKeyAndCsr } from '../../../../services/pki/index.ts';
import { openEmbeddedStore } from '../../../../services/store/embedded-store.ts';

export const api = loadRestApi();
export const logger = pino({ level: 'silent' });
export const GiB = 1024 ** 3;

const ca = await createClusterCa();

export function callerFromHeader(request: FastifyRequest): Caller {
  const header = request.headers['x-test-caller'];
  if (header === 'admin') return { kind: 'admin' };
  if (typeof header === 'string' && header.startsWith('node:')) {
    return { kind: 'node', name: header.slice('node:'.length) };
  }
  // `user:<name>;<role>;<keyHash>`: what a user certificate would say.
  if (typeof header === 'string' && header.startsWith('user:')) {
    const [name = '', role, keyHash] = header.slice('user:'.length).split(';');
    if (role === 'admin' || role === 'operator' || role === 'viewer') {
      return { kind: 'user', name, role, ...(keyHash ? { keyHash } : {}) };
    }
  }
  return { kind: 'anonymous' };
}

export interface Harness {
  app: FastifyInstance;
  runtime: ControlPlaneRuntime;
  /** inject, as `caller` ('admin', 'node:<name>' or undefined for anonymous). */
  call(caller: string | undefined, options: InjectOptions): Promise<Response>;
  /** Creates a token as admin and joins node `name` with a fresh key. */
  join(name: string, contributedBytes?: number): Promise<JoinResult>;
}

export async function startHarness(
  t: Test,
  options: {
    bodyLimit?: number;
    /** Default true: every node of these tests is on loopback. */
    singleMachine?: boolean;
    /** Default silent. */
    logger?: Logger;
  } = {},
): Promise<Harness> {
  const dir = await mkdtemp(join(tmpdir(), 'amalgam-rest-'));
  const store = await openEmbeddedStore({ dataDir: dir });
  const log = options.logger ?? logger;
  const runtime = await createControlPlane({
    store,
    singleMachine: options.singleMachine ?? true,
    ca,
    clusterName: 'rest-test',
    logger: log,
    controllers: false,
  });
  const app = buildApp({
    runtime,
    logger: log,
    registry: new Registry(),
    // As the TLS door does: a user's key must still be the one its record names
    // (service/credentials.ts). Header nodes carry no key, so only users are checked.
    identify: (request) => {
      const caller = callerFromHeader(request);
      return caller.kind === 'user' ? runtime.credentials.verify(caller, caller.keyHash) : caller;
    },
    ...(options.bodyLimit === undefined ? {} : { bodyLimit: options.bodyLimit }),
  });
  await app.ready();
  t.teardown(async () => {
    await app.close();
    await runtime.close();
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });
  const call = (caller: string | undefined, opts: InjectOptions) =>
    app.inject({
      ...opts,
      headers: { ...(opts.headers ?? {}), ...(caller ? { 'x-test-caller': caller } : {}) },
    });
  return {
    app,
    runtime,
    call,
    async join(name, contributedBytes = GiB) {
      const created = await call('admin', { method: 'POST', url: '/v1/tokens', payload: {} });
      if (created.statusCode !== 201) throw new Error(`token: ${created.body}`);
      const { csrPem } = await createKeyAndCsr({ commonName: name });
      const joined = await call(undefined, {
        method: 'POST',
        url: '/v1/join',
        payload: {
          token: created.json().token,
          name,
          csr: csrPem,
          capacity: {
            memoryBytes: contributedBytes,
            swapBytes: 0,
            contributedBytes,
            cpus: 2,
            cpuSpeed: 1000,
          },
        },
      });
      if (joined.statusCode !== 201) throw new Error(`join ${name}: ${joined.body}`);
      return joined.json() as JoinResult;
    },
  };
}

/** The shared schema a rewritten `X#` reference names, or the schema itself. */
export function resolveSchema(schema: JsonSchema): JsonSchema {
  let current = schema;
  for (let i = 0; i < 8 && typeof current.$ref === 'string'; i++) {
    const id = current.$ref.replace(/#$/, '');
    const found = api.sharedSchemas.find((s) => s.$id === id);
    if (!found) throw new Error(`no shared schema ${id}`);
    current = found;
  }
  return current;
}

/** The URL of `op` with each path parameter replaced (by its example unless overridden). */
export function urlOf(op: Operation, params: Record<string, string> = {}): string {
  return op.path.replace(/\{([^}]+)\}/g, (_, name: string) =>
    encodeURIComponent(params[name] ?? op.paramExamples[name] ?? 'x'),
  );
}

/** The caller that passes the transport's and the service's checks for `op`. */
export function rightfulCaller(
  op: Operation,
  params: Record<string, string> = {},
): string | undefined {
  switch (op.caller) {
    case 'admin':
    case 'member':
      return 'admin';
    case 'self':
      return `node:${params.name ?? op.paramExamples.name}`;
    default:
      return undefined;
  }
}

/** Codes the document lists for `op` at `status`. */
export function documentedCodes(op: Operation, status: number): string[] {
  return op.responses.find((r) => r.status === status)?.errorCodes ?? [];
}

/**
 * Checks an answer is a well-formed problem document and returns it.
 * `t.fail`s (never throws) so one bad answer does not hide the others.
 */
export function checkProblem(
  t: Test,
  res: Response,
  what: string,
): { code: string; status: number; field?: unknown; requestId: string } | undefined {
  const contentType = String(res.headers['content-type'] ?? '');
  if (!contentType.startsWith('application/problem+json')) {
    t.fail(
      `${what}: content-type ${contentType} (status ${res.statusCode}): ${res.body.slice(0, 200)}`,
    );
    return undefined;
  }
  const body = res.json();
  const ok =
    typeof body.code === 'string' &&
    Object.hasOwn(ERRORS, body.code) &&
    body.status === res.statusCode &&
    body.type === `https://amalgam.dev/errors/${body.code}` &&
    typeof body.title === 'string' &&
    typeof body.detail === 'string' &&
    body.requestId === res.headers['x-request-id'];
  if (!ok) {
    t.fail(`${what}: not a catalogue problem document: ${res.body.slice(0, 300)}`);
    return undefined;
  }
  return body;
}
