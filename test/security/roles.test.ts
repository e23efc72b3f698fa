/**
 * Least privilege over real mutual TLS (one in-process clusterd, certificates
 * made as production makes them):
 * - a viewer walks EVERY operation of openapi/amalgam.yaml (the list comes
 *   from the document, not from this file): every read answers 200, every
 *   write 403 FORBIDDEN, and a few writes over gRPC PERMISSION_DENIED;
 * - an operator runs, kills and allocates, but creates no user and removes no node;
 * - a node creating a process on another node: 403 and a log line naming both;
 * - a revoked user's certificate: 401 CREDENTIAL_REVOKED on REST and gRPC.
 */
import t from 'tap';
import { loadRestApi, type Operation } from '../../services/controlplane/rest/openapi.ts';
import {
  type OperationId,
  PERMISSIONS,
  type Permission,
} from '../../services/controlplane/service/permissions.ts';
import { GrpcStatus } from '../../services/core/errors.ts';
import { until } from '../harness/until.ts';
import { type Credential, LOAD, refusals, startCluster } from './cluster-fixture.ts';

const api = loadRestApi();

function urlOf(op: Operation, params: Record<string, string>): string {
  const path = op.path.replace(/\{([^}]+)\}/g, (_, name: string) =>
    encodeURIComponent(params[name] ?? op.paramExamples[name] ?? 'x'),
  );
  // The watch needs its prefix; other queries are optional.
  return op.operationId === 'watchResources' ? `${path}?prefix=nodes/` : path;
}

t.test('roles over real certificates', async (t) => {
  const cluster = await startCluster(t);
  const { admin, call } = cluster;
  // The document's examples name node-1, seg-1, disk0: make them exist.
  const node1 = await cluster.join('node-1');
  const node2 = await cluster.join('node-2');
  for (const [name, cred] of [
    ['node-1', node1],
    ['node-2', node2],
  ] as const) {
    t.equal((await call(cred, 'POST', `/v1/nodes/${name}/heartbeat`, LOAD)).status, 200);
  }
  const reportDevices = api.operations.find((o) => o.operationId === 'reportDevices');
  t.equal(
    (await call(node1, 'POST', '/v1/nodes/node-1/devices', reportDevices?.body?.example)).status,
    200,
    'node-1 reports disk0',
  );
  t.equal(
    (await call(admin, 'POST', '/v1/memory/segments', { size: 4096, id: 'seg-1' })).status,
    201,
  );
  const viewer = await cluster.createUser('vera', 'viewer');
  const operator = await cluster.createUser('olive', 'operator');

  const own = await call(operator, 'POST', '/v1/processes', {
    command: '/bin/true',
    node: 'node-1',
  });
  t.equal(own.status, 201, 'an operator runs a process on any node');
  const cpid = String(own.body.cpid);

  await t.test('a viewer walks every operation of the contract', async (t) => {
    for (const op of api.operations) {
      const rule: Permission = PERMISSIONS[op.operationId as OperationId];
      t.ok(rule, `${op.operationId} has a rule`);
      if (rule.open === 'token') continue; // join: the bootstrap token decides, not a role
      const res = await call(viewer, op.method, urlOf(op, { cpid }), op.body?.example);
      if (op.method === 'GET') {
        t.equal(
          res.status,
          200,
          `${op.operationId}: a read is allowed (${JSON.stringify(res.body)})`,
        );
      } else {
        t.equal(res.status, 403, `${op.operationId}: a write is refused`);
        t.equal(res.body.code, 'FORBIDDEN', `${op.operationId}: FORBIDDEN`);
      }
    }
    t.ok(
      refusals(cluster.logs, 'FORBIDDEN', /viewer user:vera may not removeNode/).length > 0,
      'the refusal is logged with who and what',
    );
    const nodes = await call(admin, 'GET', '/v1/nodes');
    t.equal((nodes.body.items as unknown[]).length, 2, 'nothing was removed');
  });

  await t.test('a viewer over gRPC: reads yes, writes PERMISSION_DENIED', async (t) => {
    const list = (await cluster.rpc(viewer, 'Nodes', 'List', {})) as { items?: unknown[] };
    t.equal(list.items?.length, 2);
    for (const [service, method, body] of [
      ['Processes', 'Create', { command: '/bin/true' }],
      ['Users', 'Create', { name: 'mallory', role: 'admin', csr: 'x' }],
      ['Nodes', 'Remove', { name: 'node-1' }],
      ['Memory', 'AllocateSegment', { size: 4096 }],
    ] as const) {
      t.match(
        await cluster.rpc(viewer, service, method, body),
        { grpcStatus: GrpcStatus.PERMISSION_DENIED, code: 'FORBIDDEN' },
        `${service}/${method}`,
      );
    }
  });

  await t.test('an operator runs, kills and allocates; no users, no node removal', async (t) => {
    t.equal((await call(operator, 'POST', `/v1/processes/${cpid}/kill`)).status, 200, 'kill');
    const seg = await call(operator, 'POST', '/v1/memory/segments', { size: 4096 });
    t.equal(seg.status, 201, 'allocate');
    t.equal((await call(operator, 'DELETE', `/v1/memory/segments/${seg.body.id}`)).status, 204);
    const csr = 'not needed: refused before';
    const user = await call(operator, 'POST', '/v1/users', { name: 'eve', role: 'admin', csr });
    t.match(user, { status: 403, body: { code: 'FORBIDDEN' } }, 'no users');
    t.match(
      await call(operator, 'DELETE', '/v1/nodes/node-2'),
      { status: 403, body: { code: 'FORBIDDEN' } },
      'no node removal',
    );
    t.match(await cluster.rpc(operator, 'Users', 'Revoke', { name: 'vera' }), {
      grpcStatus: GrpcStatus.PERMISSION_DENIED,
      code: 'FORBIDDEN',
    });
  });

  await t.test('a node creates processes on itself only', async (t) => {
    const other = await call(node1, 'POST', '/v1/processes', {
      command: '/bin/true',
      node: 'node-2',
    });
    t.match(other, { status: 403, body: { code: 'FORBIDDEN' } });
    t.match(String(other.body.detail), /node-1.*node-2/, 'the answer names both nodes');
    t.ok(
      refusals(cluster.logs, 'FORBIDDEN', /node node-1 may not createProcess for node node-2/)
        .length > 0,
      'a log line names the attempt',
    );
    const self = await call(node1, 'POST', '/v1/processes', { command: '/bin/true' });
    t.match(self, { status: 201, body: { home: 'node-1' } }, 'no node given: placed on itself');
  });

  await t.test('a revoked user is refused everywhere', async (t) => {
    const gone = await cluster.createUser('gone', 'operator');
    t.equal((await call(gone, 'GET', '/v1/nodes')).status, 200, 'live: accepted');
    const revoked = await call(admin, 'DELETE', '/v1/users/gone');
    t.match(revoked, { status: 200, body: { name: 'gone', revoked: true } });
    const refused = await until('the revoke reaches the doors', async () => {
      const res = await call(gone, 'GET', '/v1/nodes');
      return res.status === 401 ? res : undefined;
    });
    t.equal(refused.body.code, 'CREDENTIAL_REVOKED');
    t.match(await cluster.rpc(gone, 'Nodes', 'List', {}), {
      grpcStatus: GrpcStatus.UNAUTHENTICATED,
      code: 'CREDENTIAL_REVOKED',
    });
    t.ok(refusals(cluster.logs, 'CREDENTIAL_REVOKED', /gone/).length > 0, 'logged');
    const again = await call(admin, 'POST', '/v1/users', {
      name: 'gone',
      role: 'viewer',
      csr: 'x',
    });
    t.equal(again.status, 400, 'a bad CSR first');
    const users = await call(viewer, 'GET', '/v1/users');
    t.match(users.body.items, [
      { name: 'gone', revoked: true },
      { name: 'olive' },
      { name: 'vera' },
    ]);
  });
});

t.test('a revoked name is never issued again', async (t) => {
  const cluster = await startCluster(t);
  await cluster.createUser('bob', 'viewer');
  t.equal((await cluster.call(cluster.admin, 'DELETE', '/v1/users/bob')).status, 200);
  await t.rejects(cluster.createUser('bob', 'viewer'), /NAME_TAKEN/);
  const missing = await cluster.call(cluster.admin, 'DELETE', '/v1/users/nobody');
  t.match(missing, { status: 404, body: { code: 'NOT_FOUND' } });
});

export type { Credential };
