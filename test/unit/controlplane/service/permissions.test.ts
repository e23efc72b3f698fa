/**
 * The permission table (services/controlplane/service/permissions.ts): it
 * covers exactly the operations of the contract, agrees with the document's
 * coarse `x-amalgam-caller`, and `authorize` applies it (roles, the node's
 * self rule, anonymous callers).
 */
import t from 'tap';
import { GRPC_OPERATIONS } from '../../../../services/controlplane/grpc/operations.ts';
import { loadRestApi } from '../../../../services/controlplane/rest/openapi.ts';
import {
  actsOnAnything,
  authorize,
  isAllowed,
  ownerName,
} from '../../../../services/controlplane/service/authz.ts';
import type { Caller } from '../../../../services/controlplane/service/contracts.ts';
import {
  type OperationId,
  PERMISSIONS,
  type Permission,
} from '../../../../services/controlplane/service/permissions.ts';

const api = loadRestApi();
const rule = (id: string): Permission => PERMISSIONS[id as OperationId];

const admin: Caller = { kind: 'admin' };
const adminUser: Caller = { kind: 'user', name: 'ada', role: 'admin' };
const operator: Caller = { kind: 'user', name: 'olive', role: 'operator' };
const viewer: Caller = { kind: 'user', name: 'vera', role: 'viewer' };
const nodeA: Caller = { kind: 'node', name: 'a' };
const anonymous: Caller = { kind: 'anonymous' };

t.test('the table names every operation of the contract, and nothing else', async (t) => {
  t.same(Object.keys(PERMISSIONS).sort(), api.operations.map((o) => o.operationId).sort());
  for (const [path, op] of Object.entries(GRPC_OPERATIONS)) {
    t.ok(op.operationId in PERMISSIONS, `${path} -> ${op.operationId} is in the table`);
  }
});

t.test("the document's x-amalgam-caller agrees with the table", async (t) => {
  for (const op of api.operations) {
    const r = rule(op.operationId);
    const nodeMay = r.roles.includes('node') || r.nodeSelf === true;
    switch (op.caller) {
      case 'anonymous':
        t.equal(r.open, 'anyone', op.operationId);
        break;
      case 'token':
        t.equal(r.open, 'token', op.operationId);
        break;
      case 'admin':
        t.ok(r.roles.includes('admin') && !nodeMay, `${op.operationId}: people only`);
        break;
      case 'self':
        t.ok(r.nodeSelf === true && r.roles.length === 0, `${op.operationId}: the node itself`);
        break;
      case 'member':
        t.ok(nodeMay, `${op.operationId}: nodes may`);
        break;
    }
    t.equal(op.secured, r.open === undefined, `${op.operationId}: secured iff not open`);
  }
});

t.test('viewers read everything and write nothing', async (t) => {
  for (const op of api.operations) {
    if (rule(op.operationId).open !== undefined) continue;
    const reads = op.method === 'GET';
    t.equal(isAllowed(viewer, op.operationId as OperationId), reads, op.operationId);
    // The admin reads and writes everything but what only a node does for itself.
    const selfOnly = rule(op.operationId).roles.length === 0;
    t.equal(isAllowed(admin, op.operationId as OperationId), !selfOnly, `admin ${op.operationId}`);
    t.equal(isAllowed(adminUser, op.operationId as OperationId), !selfOnly);
  }
});

t.test('operators run the work, not the membership', async (t) => {
  for (const id of [
    'createProcess',
    'killProcess',
    'migrateProcess',
    'allocateSegment',
    'freeSegment',
    'setDeviceExport',
    'drainNode',
    'claimPidBlock',
  ] as const) {
    t.ok(isAllowed(operator, id), id);
  }
  for (const id of [
    'createUser',
    'revokeUser',
    'removeNode',
    'createToken',
    'deleteToken',
  ] as const) {
    t.notOk(isAllowed(operator, id), id);
    t.throws(() => authorize(operator, id), { code: 'FORBIDDEN', message: /operator user:olive/ });
  }
});

t.test('a node acts on itself only', async (t) => {
  t.ok(isAllowed(nodeA, 'heartbeatNode', 'a'));
  t.notOk(isAllowed(nodeA, 'heartbeatNode', 'b'));
  t.notOk(isAllowed(admin, 'heartbeatNode', 'a'), 'not even the admin heartbeats for a node');
  t.ok(isAllowed(nodeA, 'createProcess', 'a'));
  t.throws(() => authorize(nodeA, 'createProcess', 'b'), {
    code: 'FORBIDDEN',
    message: /node a .*node b/,
  });
  t.notOk(isAllowed(nodeA, 'migrateProcess'));
  t.notOk(isAllowed(nodeA, 'listTokens'));
  t.ok(isAllowed(nodeA, 'listNodes'));
});

t.test('anonymous callers: UNAUTHENTICATED, except the open operations', async (t) => {
  t.throws(() => authorize(anonymous, 'listNodes'), { code: 'UNAUTHENTICATED' });
  t.doesNotThrow(() => authorize(anonymous, 'getHealth'));
  t.notOk(isAllowed(anonymous, 'joinCluster'), 'join is the token check, not a role');
});

t.test('owners and who acts on anything', async (t) => {
  t.same([admin, adminUser, operator, viewer, nodeA, anonymous].map(ownerName), [
    'admin',
    'user:ada',
    'user:olive',
    'user:vera',
    'node:a',
    'anonymous',
  ]);
  t.same([admin, adminUser, operator, viewer, nodeA, anonymous].map(actsOnAnything), [
    true,
    true,
    true,
    false,
    false,
    false,
  ]);
});
