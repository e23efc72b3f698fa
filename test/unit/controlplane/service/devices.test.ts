/**
 * The network device space in the service layer, on the embedded store:
 * inventories only from their node, policies only from the admin, both CAS
 * writes that never lose each other; machine names claimed once even when
 * many machines ask at the same instant (through one replica and through two).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import t, { type Test } from 'tap';
import type {
  DeviceInventoryItem,
  DeviceView,
  JoinRequest,
} from '../../../../services/api/contracts.ts';
import { createControlPlane } from '../../../../services/controlplane/control-plane.ts';
import type {
  Caller,
  ControlPlaneRuntime,
} from '../../../../services/controlplane/service/contracts.ts';
import { createClusterCa, createKeyAndCsr } from '../../../../services/pki/index.ts';
import { openEmbeddedStore } from '../../../../services/store/embedded-store.ts';
import type { Store } from '../../../../services/store/store.ts';

const admin: Caller = { kind: 'admin' };
const anonymous: Caller = { kind: 'anonymous' };
const node = (name: string): Caller => ({ kind: 'node', name });
const MiB = 1024 * 1024;
const logger = pino({ level: 'silent' });
const ca = await createClusterCa();

async function setup(t: Test): Promise<{ cp: ControlPlaneRuntime; store: Store }> {
  const dir = await mkdtemp(join(tmpdir(), 'amalgam-dev-'));
  const store = await openEmbeddedStore({ dataDir: dir });
  const cp = await createControlPlane({
    store,
    singleMachine: true, // every node of this test is on loopback
    ca,
    clusterName: 'dev',
    logger,
    controllers: false,
  });
  t.teardown(async () => {
    await cp.close();
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });
  return { cp, store };
}

async function joinRequest(cp: ControlPlaneRuntime, name: string): Promise<JoinRequest> {
  const { token } = await cp.tokens.create(admin, {});
  const { csrPem } = await createKeyAndCsr({ commonName: name });
  return {
    token,
    name,
    csr: csrPem,
    capacity: {
      memoryBytes: 64 * MiB,
      swapBytes: 0,
      contributedBytes: 16 * MiB,
      cpus: 1,
      cpuSpeed: 1,
    },
  };
}

const image = (name: string, extra: Partial<DeviceInventoryItem> = {}): DeviceInventoryItem => ({
  name,
  kind: 'file',
  path: `/images/${name}.img`,
  sizeBytes: 64 * MiB,
  readOnly: false,
  partitions: [],
  ...extra,
});

t.test('a node reports its devices; every member reads them; only the admin exports', async (t) => {
  const { cp } = await setup(t);
  await cp.nodes.join(await joinRequest(cp, 'b'));
  await cp.nodes.join(await joinRequest(cp, 'c'));

  const reported = await cp.devices.report(node('b'), 'b', [
    image('disk0'),
    {
      name: 'sda',
      kind: 'block',
      path: '/dev/sda',
      sizeBytes: 512,
      readOnly: false,
      major: 8,
      minor: 0,
      partitions: ['sda1'],
    },
  ]);
  t.same(
    reported.map((d) => [d.node, d.name, d.exportPolicy, d.present]),
    [
      ['b', 'disk0', 'none', true],
      ['b', 'sda', 'none', true],
    ],
    'new devices start unexported',
  );
  t.equal(reported[0]?.major, null, 'a file has no device number');
  t.equal(reported[1]?.major, 8);

  await t.rejects(
    cp.devices.report(node('c'), 'b', []),
    { code: 'FORBIDDEN' },
    'not for another node',
  );
  await t.rejects(cp.devices.report(admin, 'b', []), { code: 'FORBIDDEN' }, 'not even the admin');
  await t.rejects(cp.devices.report(anonymous, 'b', []), { code: 'UNAUTHENTICATED' });
  await t.rejects(cp.devices.report(node('x'), 'x', []), { code: 'NODE_NOT_FOUND' });
  await t.rejects(cp.devices.report(node('b'), 'b', [image('bad', { path: 'relative' })]), {
    code: 'INVALID_ARGUMENT',
    details: { field: 'devices[0].path' },
  });

  t.same(
    (await cp.devices.list(node('c'))).map((d) => `${d.node}/${d.name}`),
    ['b/disk0', 'b/sda'],
  );
  t.same(await cp.devices.list(admin, 'c'), [], 'c has none');
  await t.rejects(cp.devices.list(admin, 'zz'), { code: 'NODE_NOT_FOUND' });
  t.equal((await cp.devices.get(node('c'), 'b', 'disk0')).path, '/images/disk0.img');
  await t.rejects(cp.devices.get(admin, 'b', 'nope'), { code: 'DEVICE_NOT_FOUND' });
  await t.rejects(cp.devices.get(admin, 'zz', 'disk0'), { code: 'NODE_NOT_FOUND' });
  await t.rejects(cp.devices.get(admin, 'b', '../x'), {
    code: 'INVALID_ARGUMENT',
    details: { field: 'device' },
  });

  await t.rejects(
    cp.devices.setExport(node('b'), 'b', 'disk0', 'rw'),
    { code: 'FORBIDDEN' },
    'the owner does not choose',
  );
  const exported = await cp.devices.setExport(admin, 'b', 'disk0', 'rw');
  t.equal(exported.exportPolicy, 'rw');
  await t.rejects(cp.devices.setExport(admin, 'b', 'disk0', 'all' as never), {
    code: 'INVALID_ARGUMENT',
    details: { field: 'policy' },
  });
  await t.rejects(cp.devices.setExport(admin, 'b', 'nope', 'ro'), { code: 'DEVICE_NOT_FOUND' });

  // A new report keeps the policy; a vanished exported device is kept, absent.
  const again = await cp.devices.report(node('b'), 'b', [image('disk0', { sizeBytes: 128 * MiB })]);
  t.same(
    again.map((d) => [d.name, d.exportPolicy, d.sizeBytes]),
    [['disk0', 'rw', 128 * MiB]],
  );
  const gone = await cp.devices.report(node('b'), 'b', []);
  t.same(
    gone.map((d) => [d.name, d.exportPolicy, d.present]),
    [['disk0', 'rw', false]],
  );

  await cp.devices.setExport(admin, 'b', 'disk0', 'none');
  t.same(await cp.devices.report(node('b'), 'b', []), [], 'unexported and absent: gone');
});

t.test('reports and policy changes at once: neither is ever lost', async (t) => {
  const { cp } = await setup(t);
  await cp.nodes.join(await joinRequest(cp, 'b'));
  await cp.devices.report(node('b'), 'b', [image('disk0'), image('disk1')]);
  const policies = ['ro', 'rw', 'none', 'ro', 'rw'] as const;
  const work: Promise<unknown>[] = [];
  for (let i = 0; i < 20; i++) {
    work.push(
      cp.devices.report(node('b'), 'b', [
        image('disk0', { sizeBytes: (i + 1) * MiB }),
        image('disk1'),
      ]),
    );
  }
  // Policies on disk1 in sequence (each must stick), reports racing on the same table.
  for (const p of policies) await cp.devices.setExport(admin, 'b', 'disk1', p);
  await Promise.all(work);
  const final = await cp.devices.get(admin, 'b', 'disk1');
  t.equal(final.exportPolicy, 'rw', 'the last policy set holds after 20 racing reports');
  const sizes = new Set((await cp.devices.list(admin, 'b')).map((d) => d.name));
  t.same([...sizes].sort(), ['disk0', 'disk1']);
});

t.test('removing a node removes its device names', async (t) => {
  const { cp } = await setup(t);
  await cp.nodes.join(await joinRequest(cp, 'b'));
  await cp.devices.report(node('b'), 'b', [image('disk0')]);
  await cp.devices.setExport(admin, 'b', 'disk0', 'ro');
  await cp.nodes.remove(admin, 'b');
  t.same(await cp.devices.list(admin), []);
  await cp.nodes.join(await joinRequest(cp, 'b'));
  t.same(await cp.devices.list(admin, 'b'), [], 'a new machine under the name inherits nothing');
});

t.test('devices/ is watchable: a policy change is an event', async (t) => {
  const { cp, store } = await setup(t);
  await cp.nodes.join(await joinRequest(cp, 'b'));
  await cp.devices.report(node('b'), 'b', [image('disk0')]);
  const from = (await store.revision()) + 1;
  await cp.devices.setExport(admin, 'b', 'disk0', 'ro');
  const watch = cp.watch.open(node('c'), { prefix: 'devices/', fromRevision: from });
  for await (const ev of watch) {
    t.equal(ev.key, 'devices/b');
    t.same(ev.value, await cp.devices.list(admin, 'b'), 'the value is what GET answers');
    const [disk0] = ev.value as DeviceView[];
    t.equal(disk0?.exportPolicy, 'ro');
    break;
  }
  await watch.close();
});

t.test(
  'machine names: many machines claiming one name at the same instant, one wins',
  async (t) => {
    const { cp, store } = await setup(t);
    // A second replica on the same store: its own join batcher, the same CAS.
    const replica = await createControlPlane({
      store,
      singleMachine: true, // every node of this test is on loopback
      ca,
      clusterName: 'dev',
      logger,
      controllers: false,
    });
    t.teardown(() => replica.close());
    const requests = await Promise.all(Array.from({ length: 12 }, () => joinRequest(cp, 'same')));
    const outcomes = await Promise.allSettled(
      requests.map((r, i) => (i % 2 === 0 ? cp : replica).nodes.join(r)),
    );
    const won = outcomes.filter((o) => o.status === 'fulfilled');
    const lost = outcomes.filter((o) => o.status === 'rejected');
    t.equal(won.length, 1, 'exactly one machine has the name');
    t.same(
      [...new Set(lost.map((o) => (o as PromiseRejectedResult).reason.code))],
      ['NAME_TAKEN'],
      'every other one is told NAME_TAKEN, never renamed',
    );
    const nodes = await cp.nodes.list(admin);
    t.same(
      nodes.map((n) => n.name),
      ['same'],
    );
    t.equal(
      nodes[0]?.identity,
      (won[0] as PromiseFulfilledResult<{ node: { identity: string } }>).value.node.identity,
    );
    const layout = await cp.memory.layout(admin);
    t.equal(layout.layout.ranges.length, 1, 'the losers took no range');
  },
);
