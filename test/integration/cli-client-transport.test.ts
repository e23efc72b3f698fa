/**
 * The typed client against fake clusterds on 127.0.0.1: one REST operation
 * per method with mutual TLS, problem documents rebuilt as the server's
 * AmalgamError, and failover that never sends a write twice: a write moves to
 * the next endpoint only when its connection failed before it was sent.
 */
import t, { type Test } from 'tap';
import {
  type AmalgamClient,
  ApiError,
  ClientError,
  createClient,
} from '../../services/client/index.ts';
import { isAmalgamError } from '../../services/core/errors.ts';
import {
  createTestPki,
  type FakeHandler,
  type FakeServer,
  freePort,
  startFakeServer,
  type TestPki,
} from './cli-fixtures.ts';

const pki: TestPki = await createTestPki();

const token = {
  id: 'abcdef',
  token: 'abcdef.0123456789abcdef',
  description: '',
  usages: ['join'],
  createdAt: '2026-01-01T00:00:00.000Z',
  expiresAt: '2026-01-02T00:00:00.000Z',
};

const answers: FakeHandler = (request) => {
  if (request.method === 'POST' && request.path === '/v1/tokens')
    return { status: 201, body: token };
  if (request.method === 'GET' && request.path === '/v1/tokens') {
    return { status: 200, body: { items: [token] } };
  }
  if (request.method === 'DELETE') return { status: 204 };
  if (request.method === 'GET' && request.path === '/readyz') return { status: 200, body: {} };
  return { status: 404, body: { code: 'NOT_FOUND', detail: 'no such route or resource' } };
};

async function fake(
  t: Test,
  handler: FakeHandler = answers,
  p: TestPki = pki,
): Promise<FakeServer> {
  const server = await startFakeServer(p, handler);
  t.teardown(() => server.close());
  return server;
}

function client(t: Test, endpoints: string[]): AmalgamClient {
  const c = createClient({ endpoints, ca: pki.ca.certPem, ...pki.admin, timeoutMs: 10_000 });
  t.teardown(() => c.close());
  return c;
}

t.test('one operation per method, with the admin certificate', async (t) => {
  const server = await fake(t);
  const c = client(t, [server.url]);

  t.same(await c.tokens.create({ ttlSeconds: 60 }), token);
  t.same(await c.tokens.list(), [token]);
  t.equal(await c.tokens.delete('abc/def'), undefined);
  t.equal(await c.ready(), true);

  const [create, list, del] = server.requests;
  t.equal(create?.method, 'POST');
  t.equal(create?.path, '/v1/tokens');
  t.same(JSON.parse(create?.body ?? ''), { ttlSeconds: 60 });
  t.equal(create?.headers['content-type'], 'application/json');
  t.equal(create?.clientCn, 'admin', 'the admin credential was presented and verified');
  t.equal(list?.path, '/v1/tokens');
  t.equal(del?.path, '/v1/tokens/abc%2Fdef', 'path segments are encoded');
});

t.test("a problem document is the server's AmalgamError, rebuilt", async (t) => {
  const server = await fake(t, () => ({
    status: 409,
    body: {
      type: 'https://amalgam.dev/errors/NAME_TAKEN',
      title: 'the name is already taken by another object',
      status: 409,
      code: 'NAME_TAKEN',
      detail: 'the name is already taken by another object: node-a',
      instance: '/v1/join',
      requestId: 'req-42',
      field: 'name',
    },
  }));
  const c = client(t, [server.url]);
  const err = await c.nodes.get('node-a').catch((e: unknown) => e);
  t.ok(err instanceof ApiError);
  t.ok(isAmalgamError(err, 'NAME_TAKEN'));
  const api = err as ApiError;
  t.equal(api.status, 409);
  t.equal(api.requestId, 'req-42');
  t.same(api.details, { field: 'name' });
  t.equal(api.message, 'the name is already taken by another object: node-a');
});

t.test('a write fails over when the connection was refused', async (t) => {
  const dead = `https://127.0.0.1:${await freePort()}`;
  const server = await fake(t);
  const c = client(t, [dead, server.url]);
  t.same(await c.tokens.create(), token);
  t.equal(server.requests.length, 1);
});

t.test('a write fails over when the TLS handshake failed (another CA)', async (t) => {
  const stranger = await fake(t, answers, await createTestPki());
  const server = await fake(t);
  const c = client(t, [stranger.url, server.url]);
  t.same(await c.tokens.create(), token);
  t.equal(stranger.requests.length, 0, 'nothing was sent to the server that failed verification');
  t.equal(server.requests.length, 1);
});

t.test('a write whose connection broke after sending is NOT resent', async (t) => {
  const breaking = await fake(t, () => ({ status: 0, destroy: true }));
  const server = await fake(t);
  const c = client(t, [breaking.url, server.url]);
  const err = await c.tokens.create().catch((e: unknown) => e);
  t.ok(err instanceof ClientError);
  t.equal((err as ClientError).code, 'UNAVAILABLE');
  t.equal((err as ClientError).details.sent, true);
  t.equal(breaking.requests.length, 1);
  t.equal(server.requests.length, 0, 'the write went to one endpoint only');
});

t.test('a read whose connection broke is retried on the next endpoint', async (t) => {
  const breaking = await fake(t, () => ({ status: 0, destroy: true }));
  const server = await fake(t);
  const c = client(t, [breaking.url, server.url]);
  t.same(await c.tokens.list(), [token]);
  t.equal(breaking.requests.length, 1);
  t.equal(server.requests.length, 1);
});

t.test('an HTTP error is the answer: no failover', async (t) => {
  const busy = await fake(t, () => ({
    status: 503,
    body: { code: 'NO_QUORUM', status: 503, detail: 'the store cannot reach a quorum' },
  }));
  const server = await fake(t);
  const c = client(t, [busy.url, server.url]);
  const err = await c.tokens.list().catch((e: unknown) => e);
  t.ok(isAmalgamError(err, 'NO_QUORUM'));
  t.equal(server.requests.length, 0);
});

t.test('no endpoint reachable: UNAVAILABLE naming each', async (t) => {
  const a = `https://127.0.0.1:${await freePort()}`;
  const b = `https://127.0.0.1:${await freePort()}`;
  const c = client(t, [a, b]);
  const err = await c.tokens.create().catch((e: unknown) => e);
  t.ok(err instanceof ClientError);
  t.equal((err as ClientError).code, 'UNAVAILABLE');
  t.equal((err as ClientError).details.sent, false);
  t.match((err as ClientError).message, a);
  t.match((err as ClientError).message, b);
});

t.test('after a failover, later calls start at the endpoint that answered', async (t) => {
  const dead = `https://127.0.0.1:${await freePort()}`;
  const first = await fake(t);
  const c = client(t, [dead, first.url]);
  await c.tokens.list();
  await c.tokens.list();
  t.equal(first.requests.length, 2);
});
