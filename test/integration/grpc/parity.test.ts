/**
 * REST and gRPC are two doors to the same service functions: one scenario
 * (token, two joins, heartbeat, a segment allocated and freed, drain, remove,
 * bad input, unauthorized calls) runs through each, on a fresh runtime each,
 * and every step must give the same result (ids, timestamps, keys and
 * certificates normalised) or the same catalogue code (REST problem `code` ==
 * gRPC trailer `amalgam-code`).
 *
 * REST is driven with `inject` and the caller given by `identify`; gRPC over
 * a real socket on 127.0.0.1 with real certificates (admin credential, node
 * certificates from Join, none for anonymous).
 */
import type * as grpc from '@grpc/grpc-js';
import t, { type Test } from 'tap';
import { createKeyAndCsr } from '../../../services/pki/index.ts';
import { startHarness } from '../../unit/controlplane/rest/rest-harness.ts';
import { codeOf, type Identity, makePki, startGrpcHarness } from './grpc-harness.ts';

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

type Who = 'admin' | 'anonymous' | `node:${string}`;
type Outcome = { ok: true; value: unknown } | { ok: false; code: string; status: number };

/** One operation, as both doors spell it. */
interface Op {
  rest: { method: 'GET' | 'POST' | 'DELETE'; url: string; payload?: unknown };
  grpc: { service: string; method: string; request: Record<string, unknown> };
}

interface Door {
  call(who: Who, op: Op): Promise<Outcome>;
  /** A node's key and certificate after its join (gRPC uses them; REST names the caller). */
  learn(name: string, identity: Identity): void;
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
};

async function restDoor(t: Test): Promise<Door> {
  const h = await startHarness(t);
  return {
    learn() {},
    async call(who, op) {
      const res = await h.call(who === 'anonymous' ? undefined : who, {
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
    learn(name, identity) {
      identities.set(`node:${name}`, identity);
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
  for (const name of ['node-a', 'node-b', 'node-c']) {
    const { csrPem, keyPem } = await createKeyAndCsr({ commonName: name });
    ctx[`csr:${name}`] = csrPem;
    keys[name] = keyPem;
  }
  const outcomes: Outcome[] = [];
  for (const step of scenario) {
    const outcome = await door.call(step.who, step.op(ctx));
    outcomes.push(outcome);
    if (step.fails) {
      t.equal(outcome.ok ? 'succeeded' : outcome.code, step.fails, step.what);
    } else if (!outcome.ok) {
      t.fail(`${step.what}: ${outcome.code}`);
    } else {
      step.keep?.(outcome.value as Record<string, unknown>, ctx);
      const joined = /^join (.+)$/.exec(step.what)?.[1];
      if (joined) {
        door.learn(joined, {
          keyPem: keys[joined] as string,
          certPem: ctx[`cert:${joined}`] as string,
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
