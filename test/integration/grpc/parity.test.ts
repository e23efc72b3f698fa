/**
 * REST and gRPC are two doors to the same service functions: one scenario
 * (token, two joins, heartbeat, a segment allocated and freed, drain, remove,
 * bad input, unauthorized calls, and the roles: a viewer, an operator, a node
 * placing work on another node, a revoked user) runs through each, on a fresh runtime each,
 * and every step must give the same result (ids, timestamps, keys and
 * certificates normalised) or the same catalogue code (REST problem `code` ==
 * gRPC trailer `amalgam-code`).
 *
 * REST is driven with `inject` and the caller given by `identify`; gRPC over
 * a real socket on 127.0.0.1 with real certificates (admin credential, node
 * certificates from Join, user certificates from Users/Create, none for
 * anonymous).
 */
import { X509Certificate } from 'node:crypto';
import type * as grpc from '@grpc/grpc-js';
import t, { type Test } from 'tap';
import {
  caCertHash,
  createKeyAndCsr,
  ROLE_ORGANIZATIONS,
  USER_ROLES,
} from '../../../services/pki/index.ts';
import { until } from '../../harness/until.ts';
import { startHarness } from '../../unit/controlplane/rest/rest-harness.ts';
import { codeOf, type Identity, makePki, startGrpcHarness } from './grpc-harness.ts';

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

type Who = 'admin' | 'anonymous' | `node:${string}` | `user:${string}`;
type Outcome = { ok: true; value: unknown } | { ok: false; code: string; status: number };

/** One operation, as both doors spell it. */
interface Op {
  rest: { method: 'GET' | 'POST' | 'DELETE'; url: string; payload?: unknown };
  grpc: { service: string; method: string; request: Record<string, unknown> };
}

interface Door {
  call(who: Who, op: Op): Promise<Outcome>;
  /** A node's or user's key and certificate once issued (gRPC uses them; REST names the caller). */
  learn(who: Who, identity: Identity): void;
}

const ops = {
  createToken: (body: Record<string, unknown>): Op => ({
    rest: { method: 'POST', url: '/v1/tokens', payload: body },
    grpc: { service: 'Tokens', method: 'Create', request: body },
  }),
  listTokens: (): Op => ({
    rest: { method: 'GET', url: '/v1/tokens' },
    grpc: { service: 'Tokens', method: 'List', request: {} },
  }),
  deleteToken: (id: string): Op => ({
    rest: { method: 'DELETE', url: `/v1/tokens/${id}` },
    grpc: { service: 'Tokens', method: 'Delete', request: { id } },
  }),
  join: (body: Record<string, unknown>): Op => ({
    rest: { method: 'POST', url: '/v1/join', payload: body },
    grpc: { service: 'Nodes', method: 'Join', request: body },
  }),
  cluster: (): Op => ({
    rest: { method: 'GET', url: '/v1/cluster' },
    grpc: { service: 'Cluster', method: 'GetInfo', request: {} },
  }),
  listNodes: (): Op => ({
    rest: { method: 'GET', url: '/v1/nodes' },
    grpc: { service: 'Nodes', method: 'List', request: {} },
  }),
  getNode: (name: string): Op => ({
    rest: { method: 'GET', url: `/v1/nodes/${name}` },
    grpc: { service: 'Nodes', method: 'Get', request: { name } },
  }),
  heartbeat: (
    name: string,
    load: Record<string, number>,
    pageserver?: { address: string; tls: boolean },
  ): Op => ({
    rest: {
      method: 'POST',
      url: `/v1/nodes/${name}/heartbeat`,
      payload: pageserver ? { ...load, pageserver } : load,
    },
    grpc: {
      service: 'Nodes',
      method: 'Heartbeat',
      request: pageserver ? { name, load, pageserver } : { name, load },
    },
  }),
  drain: (name: string): Op => ({
    rest: { method: 'POST', url: `/v1/nodes/${name}/drain` },
    grpc: { service: 'Nodes', method: 'Drain', request: { name } },
  }),
  remove: (name: string): Op => ({
    rest: { method: 'DELETE', url: `/v1/nodes/${name}` },
    grpc: { service: 'Nodes', method: 'Remove', request: { name } },
  }),
  layout: (): Op => ({
    rest: { method: 'GET', url: '/v1/memory/layout' },
    grpc: { service: 'Memory', method: 'GetLayout', request: {} },
  }),
  allocate: (body: Record<string, unknown>): Op => ({
    rest: { method: 'POST', url: '/v1/memory/segments', payload: body },
    grpc: { service: 'Memory', method: 'AllocateSegment', request: body },
  }),
  listSegments: (): Op => ({
    rest: { method: 'GET', url: '/v1/memory/segments' },
    grpc: { service: 'Memory', method: 'ListSegments', request: {} },
  }),
  getSegment: (id: string): Op => ({
    rest: { method: 'GET', url: `/v1/memory/segments/${id}` },
    grpc: { service: 'Memory', method: 'GetSegment', request: { id } },
  }),
  freeSegment: (id: string): Op => ({
    rest: { method: 'DELETE', url: `/v1/memory/segments/${id}` },
    grpc: { service: 'Memory', method: 'FreeSegment', request: { id } },
  }),
  createUser: (body: Record<string, unknown>): Op => ({
    rest: { method: 'POST', url: '/v1/users', payload: body },
    grpc: { service: 'Users', method: 'Create', request: body },
  }),
  listUsers: (): Op => ({
    rest: { method: 'GET', url: '/v1/users' },
    grpc: { service: 'Users', method: 'List', request: {} },
  }),
  revokeUser: (name: string): Op => ({
    rest: { method: 'DELETE', url: `/v1/users/${name}` },
    grpc: { service: 'Users', method: 'Revoke', request: { name } },
  }),
  createProcess: (body: Record<string, unknown>): Op => ({
    rest: { method: 'POST', url: '/v1/processes', payload: body },
    grpc: { service: 'Processes', method: 'Create', request: body },
  }),
};

/** What a user certificate says, as the REST harness's `x-test-caller` spells it. */
function restUserCaller(who: string, identity: Identity): string {
  const cert = new X509Certificate(String(identity?.certPem));
  const role = USER_ROLES.find((r) => cert.subject.includes(`O=${ROLE_ORGANIZATIONS[r]}`));
  return `${who};${role};${caCertHash(String(identity?.certPem))}`;
}

async function restDoor(t: Test): Promise<Door> {
  const h = await startHarness(t);
  const users = new Map<string, string>();
  return {
    learn(who, identity) {
      if (who.startsWith('user:')) users.set(who, restUserCaller(who, identity));
    },
    async call(who, op) {
      const caller = who === 'anonymous' ? undefined : (users.get(who) ?? who);
      const res = await h.call(caller, {
        method: op.rest.method,
        url: op.rest.url,
        ...(op.rest.payload !== undefined ? { payload: op.rest.payload as object } : {}),
      });
      if (res.statusCode >= 400) {
        return { ok: false, code: res.json().code, status: res.statusCode };
      }
      return { ok: true, value: res.statusCode === 204 ? {} : res.json() };
    },
  };
}

async function grpcDoor(t: Test): Promise<Door> {
  const h = await startGrpcHarness(t, await makePki());
  const identities = new Map<string, Identity>([
    ['admin', h.pki.admin],
    ['anonymous', undefined],
  ]);
  return {
    learn(who, identity) {
      identities.set(who, identity);
    },
    async call(who, op) {
      if (!identities.has(who)) throw new Error(`no identity for ${who}`);
      const rpc = h.rpc(op.grpc.service, identities.get(who));
      try {
        return { ok: true, value: await rpc(op.grpc.method, op.grpc.request) };
      } catch (err) {
        return { ok: false, code: codeOf(err), status: (err as grpc.ServiceError).code };
      }
    },
  };
}

const VARIABLE = new Set([
  'id',
  'token',
  'createdAt',
  'expiresAt',
  'joinedAt',
  'lastHeartbeatAt',
  'identity',
  'certificate',
  'caCertificate',
  'caCertHash',
  'revokedAt',
]);

/**
 * What may legitimately differ between two runs, replaced by markers; and
 * "absent" made one thing (REST says null, proto3 leaves an unset field out).
 */
function normalise(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(normalise);
  if (value === null || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value).sort(([a], [b]) => a.localeCompare(b))) {
    if (v === null || v === undefined) continue;
    out[key] = VARIABLE.has(key) && typeof v === 'string' ? `<${key}>` : normalise(v);
  }
  return out;
}

interface Step {
  what: string;
  who: Who;
  op: (ctx: Record<string, string>) => Op;
  /** Expected catalogue code when the step must fail. */
  fails?: string;
  /** Keeps values for later steps. */
  keep?: (value: Record<string, unknown>, ctx: Record<string, string>) => void;
  /** A certificate this step issues, for the caller named. */
  issues?: Who;
  /** The expected failure may take a moment (a revoke reaches the doors through the mirror). */
  eventually?: boolean;
}

const LOAD = { load1: 0.5, load5: 0.25, load15: 0.125, memoryUsedBytes: 512 * MiB, processes: 99 };
const capacity = {
  memoryBytes: 4 * GiB,
  swapBytes: 0,
  contributedBytes: GiB,
  cpus: 2,
  cpuSpeed: 1000,
};

const scenario: Step[] = [
  {
    what: 'create a token',
    who: 'admin',
    op: () => ops.createToken({ ttlSeconds: 3600, description: 'parity' }),
    keep: (v, ctx) => {
      ctx.token = String(v.token);
      ctx.tokenId = String(v.id);
    },
  },
  { what: 'list tokens', who: 'admin', op: () => ops.listTokens() },
  ...['node-a', 'node-b'].map(
    (name): Step => ({
      what: `join ${name}`,
      who: 'anonymous',
      op: (ctx) =>
        ops.join({
          token: ctx.token,
          name,
          csr: ctx[`csr:${name}`],
          capacity,
          roles: ['worker'],
          labels: { rack: 'r4' },
        }),
      keep: (v, ctx) => {
        ctx[`cert:${name}`] = String(v.certificate);
      },
    }),
  ),
  {
    what: 'heartbeat',
    who: 'node:node-a',
    op: () => ops.heartbeat('node-a', LOAD),
  },
  {
    what: 'heartbeat publishing the page server',
    who: 'node:node-a',
    op: () => ops.heartbeat('node-a', LOAD, { address: '127.0.0.1:7070', tls: false }),
  },
  {
    what: 'heartbeat with a bad page server address',
    who: 'node:node-a',
    op: () => ops.heartbeat('node-a', LOAD, { address: '127.0.0.1:70000', tls: true }),
    fails: 'INVALID_ARGUMENT',
  },
  { what: 'list nodes with a page server', who: 'admin', op: () => ops.listNodes() },
  { what: 'get a node', who: 'node:node-a', op: () => ops.getNode('node-a') },
  { what: 'cluster info', who: 'admin', op: () => ops.cluster() },
  {
    what: 'allocate a segment',
    who: 'admin',
    op: () => ops.allocate({ size: 3 * MiB + 5, placement: { mode: 'pinned', node: 'node-a' } }),
    keep: (v, ctx) => {
      ctx.segment = String(v.id);
    },
  },
  {
    what: 'allocate a spread segment with a chosen id',
    who: 'admin',
    op: () => ops.allocate({ size: 8 * MiB, id: 'seg-parity' }),
  },
  { what: 'memory layout', who: 'admin', op: () => ops.layout() },
  { what: 'list segments', who: 'admin', op: () => ops.listSegments() },
  { what: 'get the segment', who: 'admin', op: (ctx) => ops.getSegment(String(ctx.segment)) },
  { what: 'free the segment', who: 'admin', op: (ctx) => ops.freeSegment(String(ctx.segment)) },
  { what: 'free the other segment', who: 'admin', op: () => ops.freeSegment('seg-parity') },
  {
    what: 'a freed segment is gone',
    who: 'admin',
    op: (ctx) => ops.getSegment(String(ctx.segment)),
    fails: 'SEGMENT_NOT_FOUND',
  },
  {
    what: 'a node changing another node',
    who: 'node:node-b',
    op: () => ops.heartbeat('node-a', LOAD),
    fails: 'FORBIDDEN',
  },
  {
    what: 'a node draining another node',
    who: 'node:node-b',
    op: () => ops.drain('node-a'),
    fails: 'FORBIDDEN',
  },
  ...(['viewer', 'operator'] as const).map(
    (role): Step => ({
      what: `create a ${role}`,
      who: 'admin',
      op: (ctx) => ops.createUser({ name: role, role, csr: ctx[`csr:${role}`] }),
      keep: (v, ctx) => {
        ctx[`cert:${role}`] = String(v.certificate);
      },
      issues: `user:${role}`,
    }),
  ),
  { what: 'a viewer reads the nodes', who: 'user:viewer', op: () => ops.listNodes() },
  { what: 'a viewer reads the users', who: 'user:viewer', op: () => ops.listUsers() },
  {
    what: 'a viewer allocates',
    who: 'user:viewer',
    op: () => ops.allocate({ size: MiB }),
    fails: 'FORBIDDEN',
  },
  {
    what: 'a viewer removes a node',
    who: 'user:viewer',
    op: () => ops.remove('node-a'),
    fails: 'FORBIDDEN',
  },
  {
    what: 'an operator allocates',
    who: 'user:operator',
    op: () => ops.allocate({ size: MiB, id: 'seg-operator' }),
  },
  { what: 'an operator frees', who: 'user:operator', op: () => ops.freeSegment('seg-operator') },
  {
    what: 'an operator creates a user',
    who: 'user:operator',
    op: (ctx) => ops.createUser({ name: 'eve', role: 'admin', csr: ctx['csr:eve'] }),
    fails: 'FORBIDDEN',
  },
  {
    what: 'an operator removes a node',
    who: 'user:operator',
    op: () => ops.remove('node-b'),
    fails: 'FORBIDDEN',
  },
  {
    what: 'a node places a process on another node',
    who: 'node:node-a',
    op: () => ops.createProcess({ command: '/bin/true', node: 'node-b' }),
    fails: 'FORBIDDEN',
  },
  { what: 'revoke the viewer', who: 'admin', op: () => ops.revokeUser('viewer') },
  {
    what: 'a revoked viewer',
    who: 'user:viewer',
    op: () => ops.listNodes(),
    fails: 'CREDENTIAL_REVOKED',
    eventually: true,
  },
  { what: 'drain', who: 'admin', op: () => ops.drain('node-b') },
  { what: 'remove', who: 'admin', op: () => ops.remove('node-b') },
  { what: 'list nodes', who: 'admin', op: () => ops.listNodes() },
  {
    what: 'negative size',
    who: 'admin',
    op: () => ops.allocate({ size: -1 }),
    fails: 'INVALID_ARGUMENT',
  },
  {
    what: 'bad node name',
    who: 'anonymous',
    op: (ctx) => ops.join({ token: ctx.token, name: 'Bad_Name', csr: ctx['csr:node-c'], capacity }),
    fails: 'INVALID_ARGUMENT',
  },
  {
    what: 'bad token',
    who: 'anonymous',
    op: (ctx) =>
      ops.join({
        token: 'abcdef.0123456789abcdef',
        name: 'node-c',
        csr: ctx['csr:node-c'],
        capacity,
      }),
    fails: 'TOKEN_NOT_FOUND',
  },
  { what: 'no certificate', who: 'anonymous', op: () => ops.listNodes(), fails: 'UNAUTHENTICATED' },
  {
    what: 'no certificate, admin call',
    who: 'anonymous',
    op: () => ops.createToken({}),
    fails: 'UNAUTHENTICATED',
  },
  {
    what: 'a node is not the admin',
    who: 'node:node-a',
    op: () => ops.listTokens(),
    fails: 'FORBIDDEN',
  },
  { what: 'unknown node', who: 'admin', op: () => ops.getNode('nope'), fails: 'NODE_NOT_FOUND' },
  { what: 'delete the token', who: 'admin', op: (ctx) => ops.deleteToken(String(ctx.tokenId)) },
];

interface Run {
  outcomes: Outcome[];
}

async function run(t: Test, door: Door): Promise<Run> {
  const ctx: Record<string, string> = {};
  const keys: Record<string, string> = {};
  for (const name of ['node-a', 'node-b', 'node-c', 'viewer', 'operator', 'eve']) {
    const { csrPem, keyPem } = await createKeyAndCsr({ commonName: name });
    ctx[`csr:${name}`] = csrPem;
    keys[name] = keyPem;
  }
  const outcomes: Outcome[] = [];
  for (const step of scenario) {
    const once = () => door.call(step.who, step.op(ctx));
    const outcome = step.eventually
      ? await until(step.what, async () => {
          const o = await once();
          return !o.ok && o.code === step.fails ? o : undefined;
        }).catch(once)
      : await once();
    outcomes.push(outcome);
    if (step.fails) {
      t.equal(outcome.ok ? 'succeeded' : outcome.code, step.fails, step.what);
    } else if (!outcome.ok) {
      t.fail(`${step.what}: ${outcome.code}`);
    } else {
      step.keep?.(outcome.value as Record<string, unknown>, ctx);
      const joined = /^join (.+)$/.exec(step.what)?.[1];
      if (joined) {
        door.learn(`node:${joined}`, {
          keyPem: keys[joined] as string,
          certPem: ctx[`cert:${joined}`] as string,
        });
      }
      if (step.issues) {
        const name = step.issues.slice(step.issues.indexOf(':') + 1);
        door.learn(step.issues, {
          keyPem: keys[name] as string,
          certPem: ctx[`cert:${name}`] as string,
        });
      }
    }
  }
  return { outcomes };
}

t.test('one scenario through REST and through gRPC gives the same results', async (t) => {
  const rest = await run(t, await restDoor(t));
  const grpc = await run(t, await grpcDoor(t));
  scenario.forEach((step, i) => {
    const r = rest.outcomes[i] as Outcome;
    const g = grpc.outcomes[i] as Outcome;
    if (r.ok && g.ok) {
      t.same(normalise(g.value), normalise(r.value), `${step.what}: same result`);
    } else if (!r.ok && !g.ok) {
      t.equal(g.code, r.code, `${step.what}: same code (${r.code})`);
    } else {
      t.fail(`${step.what}: REST ${JSON.stringify(r)} vs gRPC ${JSON.stringify(g)}`);
    }
  });
});
