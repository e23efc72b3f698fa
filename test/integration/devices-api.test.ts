/**
 * The device resources on a real clusterd over both doors: a node reports its
 * inventory with its own certificate, the admin exports with `clusteradm dev`
 * (-o json), REST and gRPC answer the same, a watch of `devices/` sees the
 * change; and two machines running `clusteradm join` with the same name at
 * the same instant: exactly one gets it, the other NAME_TAKEN.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import type { DeviceInventoryItem, DeviceView } from '../../services/api/contracts.ts';
import { runClusteradm } from '../../services/cli/main.ts';
import { type AmalgamClient, createClient } from '../../services/client/index.ts';
import { caCertHash } from '../../services/pki/index.ts';
import { adminClusteradm } from '../harness/clusteradm.ts';
import { startClusterdReplicas } from '../harness/clusterd.ts';
import { joinNode } from '../harness/node.ts';
import { captureContext } from '../unit/cli/cli-context.ts';

const MiB = 1024 * 1024;
const cd = await startClusterdReplicas({ count: 1, store: { backend: 'embedded' }, grpc: true });
t.teardown(() => cd.destroy());
const dir = await mkdtemp(join(tmpdir(), `amalgam-devapi-${process.pid}-`));
t.teardown(() => rm(dir, { recursive: true, force: true }));

const clusteradm = adminClusteradm(cd, dir);

const admin = createClient({ endpoints: cd.urls, ...cd.admin });
const adminGrpc = createClient({ transport: 'grpc', endpoints: cd.grpcUrls, ...cd.admin });
t.teardown(() => Promise.all([admin.close(), adminGrpc.close()]));

const b = await joinNode(cd, 'dev-b', { home: join(dir, 'dev-b'), contributedBytes: 16 * MiB });
/** dev-b's own certificate, for its clients on both doors. */
const asB = { ca: b.joined.caCertificate, cert: b.joined.certificate, key: b.keyPem };
const nodeB: AmalgamClient = createClient({ endpoints: cd.urls, ...asB });
const nodeBGrpc: AmalgamClient = createClient({
  transport: 'grpc',
  endpoints: cd.grpcUrls,
  ...asB,
});
t.teardown(() => Promise.all([nodeB.close(), nodeBGrpc.close()]));

/** dev-b's inventory: one image file, one read-only block device. */
const INVENTORY: DeviceInventoryItem[] = [
  {
    name: 'disk0',
    kind: 'file',
    path: '/img/disk0.img',
    sizeBytes: 64 * MiB,
    readOnly: false,
    partitions: [],
  },
  {
    name: 'sda',
    kind: 'block',
    path: '/dev/sda',
    sizeBytes: 512,
    readOnly: true,
    major: 8,
    minor: 0,
    partitions: [],
  },
];

t.test('a node reports; both doors list the same; the admin exports with clusteradm', async (t) => {
  const reported = await nodeB.devices.report('dev-b', INVENTORY);
  t.same(
    reported.map((d) => [d.name, d.exportPolicy]),
    [
      ['disk0', 'none'],
      ['sda', 'none'],
    ],
  );
  // The same inventory over gRPC is the same answer (nothing changed).
  const again = await nodeBGrpc.devices.report('dev-b', INVENTORY);
  t.same(again, reported, 'gRPC Report answers what REST did');
  t.same(await adminGrpc.devices.list(), await admin.devices.list(), 'List is the same on both');
  t.same(await adminGrpc.devices.list('dev-b'), reported, 'List of one node over gRPC');
  await t.rejects(adminGrpc.devices.list('nobody'), { code: 'NODE_NOT_FOUND' });
  await t.rejects(admin.devices.list('nobody'), { code: 'NODE_NOT_FOUND' });
  await t.rejects(adminGrpc.devices.get('dev-b', 'Bad/Name'), {
    code: 'INVALID_ARGUMENT',
    details: { field: 'device' },
  });
  t.same(await adminGrpc.devices.get('dev-b', 'sda'), await admin.devices.get('dev-b', 'sda'));
  await t.rejects(adminGrpc.devices.get('dev-b', 'nope'), { code: 'DEVICE_NOT_FOUND' });
  await t.rejects(admin.devices.get('dev-b', 'nope'), { code: 'DEVICE_NOT_FOUND' });
  await t.rejects(nodeB.devices.setExport('dev-b', 'disk0', 'rw'), { code: 'FORBIDDEN' });
  await t.rejects(nodeBGrpc.devices.setExport('dev-b', 'disk0', 'rw'), { code: 'FORBIDDEN' });
  await t.rejects(admin.devices.report('dev-b', []), { code: 'FORBIDDEN' });

  const watch = admin.watch({ prefix: 'devices/' });
  const seen = (async () => {
    for await (const ev of watch) {
      const views = ev.value as DeviceView[] | null;
      if (views?.find((d) => d.name === 'disk0')?.exportPolicy === 'rw') return ev.key;
    }
    return undefined;
  })();

  const exported = await clusteradm('dev', 'export', 'dev-b/disk0', '--rw', '-o', 'json');
  t.equal(exported.code, 0, exported.stderr);
  t.equal((JSON.parse(exported.stdout) as DeviceView).exportPolicy, 'rw');
  t.equal(await seen, 'devices/dev-b', 'the watch of devices/ saw the export');
  await watch.close();

  const refused = await clusteradm('dev', 'export', 'dev-b/sda', '--rw');
  t.equal(refused.code, 1);
  t.match(
    refused.stderr,
    /^error: INVALID_ARGUMENT: .*policy: dev-b\/sda is read-only/,
    'a read-only device is never rw',
  );
  t.equal((await clusteradm('dev', 'export', 'dev-b/sda', '--ro')).code, 0);

  const listed = await clusteradm('dev', 'ls', '-o', 'json');
  t.same(
    (JSON.parse(listed.stdout) as { items: DeviceView[] }).items.map((d) => [
      d.name,
      d.exportPolicy,
    ]),
    [
      ['disk0', 'rw'],
      ['sda', 'ro'],
    ],
  );
  const table = await clusteradm('dev', 'ls', 'dev-b');
  t.match(table.stdout, /^DEVICE +KIND +SIZE +EXPORT/);
  t.match(table.stdout, /dev-b\/disk0 +file +64Mi +rw +present/);
  const described = await clusteradm('dev', 'describe', 'dev-b/sda');
  t.match(described.stdout, /Device number: +8:0/);
  const missing = await clusteradm('dev', 'describe', 'dev-b/nope');
  t.equal(missing.code, 1);
  t.match(missing.stderr, /^error: DEVICE_NOT_FOUND/);

  const unexported = await clusteradm('dev', 'unexport', 'dev-b/disk0', '-o', 'json');
  t.equal((JSON.parse(unexported.stdout) as DeviceView).exportPolicy, 'none');
  t.equal((await admin.devices.get('dev-b', 'disk0')).exportPolicy, 'none');
});

t.test(
  'two machines join with one name at the same instant: one wins, one NAME_TAKEN',
  async (t) => {
    const { token } = await admin.tokens.create({ description: 'race' });
    const hash = caCertHash(cd.admin.ca);
    const join1 = join(dir, 'race-1');
    const join2 = join(dir, 'race-2');
    const results = await Promise.all(
      [join1, join2].map(async (home) => {
        const { context, out } = captureContext({ cwd: dir, userHome: dir });
        const code = await runClusteradm(
          [
            'join',
            cd.urls[0] as string,
            '--token',
            token,
            '--ca-cert-hash',
            hash,
            '--name',
            'twin',
            '--home',
            home,
            '--no-agent',
          ],
          context,
        );
        return { code, ...out };
      }),
    );
    const codes = results.map((r) => r.code).sort();
    t.same(codes, [0, 1], 'exactly one join succeeded');
    const loser = results.find((r) => r.code === 1);
    t.match(loser?.stderr, /^error: NAME_TAKEN: .*twin/m, 'the other is told NAME_TAKEN');
    const twins = (await admin.nodes.list()).filter((n) => n.name === 'twin');
    t.equal(twins.length, 1, 'one node named twin');
  },
);
