/**
 * Who may call what, through the REST transport and the real service layer.
 * Operations come from the document: every operation that needs a client
 * certificate refuses an anonymous caller with 401 before reading the body;
 * every admin-only operation refuses a node with 403; a node changes only
 * its own objects.
 */
import type { FastifyRequest } from 'fastify';
import t from 'tap';
import { callerFromTls } from '../../../../services/controlplane/rest/identity.ts';
import { createKeyAndCsr } from '../../../../services/pki/index.ts';
import { api, checkProblem, GiB, rightfulCaller, startHarness, urlOf } from './rest-harness.ts';

t.test(
  'anonymous callers get 401 UNAUTHENTICATED on every operation that needs a certificate',
  async (t) => {
    const { call } = await startHarness(t);
    const secured = api.operations.filter((op) => op.secured);
    t.ok(secured.length >= 14, 'every /v1 operation but join is secured');
    for (const op of secured) {
      for (const payload of [op.body?.example, { garbage: true }, 'x'.repeat(200_000)]) {
        if (op.method === 'GET' && payload !== undefined) continue;
        const res = await call(undefined, {
          method: op.method,
          url: urlOf(op),
          ...(payload === undefined ? {} : { payload: payload as object }),
        });
        const what = `${op.method} ${op.path} anonymous`;
        t.equal(res.statusCode, 401, what);
        t.equal(checkProblem(t, res, what)?.code, 'UNAUTHENTICATED', what);
      }
    }
  },
);

t.test(
  'the operations open to anonymous callers are join and the operational endpoints',
  async (t) => {
    const open = api.operations.filter((op) => !op.secured).map((op) => op.operationId);
    t.same(open.sort(), [
      'getDocs',
      'getHealth',
      'getMetrics',
      'getOpenApi',
      'getReadiness',
      'joinCluster',
    ]);
    const { call } = await startHarness(t);
    const join = api.operations.find((op) => op.operationId === 'joinCluster');
    const res = await call(undefined, {
      method: 'POST',
      url: '/v1/join',
      payload: join?.body?.example as object,
    });
    t.equal(
      res.json().code,
      'TOKEN_NOT_FOUND',
      'join is judged by its token, not by a certificate',
    );
  },
);

t.test('a node may not call admin-only operations', async (t) => {
  const h = await startHarness(t);
  await h.join('node-a');
  for (const op of api.operations.filter((o) => o.caller === 'admin')) {
    const res = await h.call('node:node-a', {
      method: op.method,
      url: urlOf(op, { name: 'node-a' }),
      ...(op.body ? { payload: op.body.example as object } : {}),
    });
    const what = `${op.method} ${op.path} as node-a`;
    t.equal(res.statusCode, 403, what);
    t.equal(checkProblem(t, res, what)?.code, 'FORBIDDEN', what);
  }
  // And the admin may: the same calls answer something else than 401/403.
  const drained = await h.call('admin', { method: 'POST', url: '/v1/nodes/node-a/drain' });
  t.equal(drained.statusCode, 200);
  t.equal(drained.json().state, 'Draining');
});

t.test('a node changes only its own objects', async (t) => {
  const h = await startHarness(t);
  await h.join('node-a');
  await h.join('node-b');
  const load = { load1: 0.1, load5: 0.1, load15: 0.1, memoryUsedBytes: 1, processes: 1 };

  const other = await h.call('node:node-b', {
    method: 'POST',
    url: '/v1/nodes/node-a/heartbeat',
    payload: load,
  });
  t.equal(other.statusCode, 403, 'node-b may not heartbeat for node-a');
  t.equal(other.json().code, 'FORBIDDEN');
  const admin = await h.call('admin', {
    method: 'POST',
    url: '/v1/nodes/node-a/heartbeat',
    payload: load,
  });
  t.equal(admin.statusCode, 403, 'not even the admin heartbeats for a node');
  const self = await h.call('node:node-a', {
    method: 'POST',
    url: '/v1/nodes/node-a/heartbeat',
    payload: load,
  });
  t.equal(self.statusCode, 200, 'node-a heartbeats for itself');
  t.equal(self.json().state, 'Ready');
  t.same(self.json().load, load);

  // Segments: the owner or the admin frees them, not another node.
  const seg = await h.call('node:node-a', {
    method: 'POST',
    url: '/v1/memory/segments',
    payload: { size: 4096, placement: { mode: 'pinned', node: 'node-a' }, id: 'seg-a' },
  });
  t.equal(seg.statusCode, 201, seg.body);
  t.equal(seg.json().owner, 'node:node-a');
  const stolen = await h.call('node:node-b', {
    method: 'DELETE',
    url: '/v1/memory/segments/seg-a',
  });
  t.equal(stolen.statusCode, 403);
  t.equal(stolen.json().code, 'FORBIDDEN');
  t.equal(
    (await h.call('node:node-b', { url: '/v1/memory/segments/seg-a' })).statusCode,
    200,
    'but may read it',
  );
  const freed = await h.call('node:node-a', { method: 'DELETE', url: '/v1/memory/segments/seg-a' });
  t.equal(freed.statusCode, 204);
  t.equal(freed.body, '');
});

t.test('every operation answers its rightful caller with a documented status', async (t) => {
  const h = await startHarness(t);
  await h.join('node-1', 4 * GiB);
  for (const op of api.operations) {
    if (op.operationId === 'removeNode') continue; // would remove node-1 for the ones after it
    const res = await h.call(rightfulCaller(op), {
      method: op.method,
      url: urlOf(op),
      ...(op.body ? { payload: op.body.example as object } : {}),
    });
    const statuses = op.responses.map((r) => r.status);
    t.ok(statuses.includes(res.statusCode), `${op.operationId}: ${res.statusCode} is documented`);
    const code = res.statusCode >= 400 ? res.json().code : undefined;
    t.notOk(
      code === 'UNAUTHENTICATED' || code === 'FORBIDDEN',
      `${op.operationId}: authorized (${res.statusCode} ${code ?? ''})`,
    );
  }
  const pinned = await h.call('admin', {
    method: 'POST',
    url: '/v1/memory/segments',
    payload: { size: 1, placement: { mode: 'pinned', node: 'node-1' }, id: 'seg-2' },
  });
  t.equal(pinned.statusCode, 201);
  const removed = await h.call('admin', { method: 'DELETE', url: '/v1/nodes/node-1' });
  t.equal(removed.statusCode, 409, 'node-1 still holds seg-2');
  t.equal(removed.json().code, 'NODE_IN_USE');
  t.same(removed.json().segments, ['seg-2'], 'details become problem members');
});

t.test('the TLS identity: only a verified certificate names a caller', async (t) => {
  // Over inject (and any plain socket) there is no TLS peer at all.
  const request = { raw: { socket: {} } } as unknown as FastifyRequest;
  const verifier = { verify: async () => t.fail('no certificate, nothing to verify') as never };
  t.same(await callerFromTls(request, verifier), { kind: 'anonymous' });
});

t.test(
  'expired, deleted, malformed and wrong-secret tokens: 401, a distinct code each, nothing taken',
  async (t) => {
    const h = await startHarness(t);
    const { csrPem } = await createKeyAndCsr({ commonName: 'late' });
    const token = async (payload: object) => {
      const res = await h.call('admin', { method: 'POST', url: '/v1/tokens', payload });
      t.equal(res.statusCode, 201);
      return res.json() as { id: string; token: string };
    };
    const good = await token({});
    const deleted = await token({});
    t.equal(
      (await h.call('admin', { method: 'DELETE', url: `/v1/tokens/${deleted.id}` })).statusCode,
      204,
    );
    const expiring = await token({ ttlSeconds: 1 });
    await new Promise((r) => setTimeout(r, 1100));
    const cases = [
      ['malformed', 'not-a-token', 'TOKEN_MALFORMED'],
      ['never created', 'zzzzzz.0123456789abcdef', 'TOKEN_NOT_FOUND'],
      ['deleted', deleted.token, 'TOKEN_NOT_FOUND'],
      ['expired', expiring.token, 'TOKEN_EXPIRED'],
      ['wrong secret', `${good.id}.0123456789abcdef`, 'TOKEN_INVALID'],
    ] as const;
    for (const [what, text, code] of cases) {
      const res = await h.call(undefined, {
        method: 'POST',
        url: '/v1/join',
        payload: {
          token: text,
          name: 'late',
          csr: csrPem,
          capacity: { memoryBytes: GiB, swapBytes: 0, contributedBytes: GiB, cpus: 1, cpuSpeed: 1 },
        },
      });
      t.equal(res.statusCode, 401, what);
      t.equal(checkProblem(t, res, what)?.code, code, what);
    }
    const layout = await h.call('admin', { method: 'GET', url: '/v1/memory/layout' });
    t.same(layout.json().layout.ranges, [], 'no refused join took a range');
  },
);
