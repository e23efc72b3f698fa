/**
 * The network device space end to end, on loopback: one clusterd and three
 * agents (rd-a, rd-b, rd-c), each with its own page server and its own
 * remotedev-fuse mount in a temp dir, as `remotedev.mount` configures it. Node
 * B declares images as devices; the admin exports with `clusteradm dev`;
 * everything else follows from the watch: B's page server gets its
 * `--devices` file, every mount its `--tree` file.
 *
 * - a 64 MiB image exported rw on B is written through A's mount with dd and
 *   read back byte for byte through C's mount with cmp (and is on B's disk);
 * - a device exported ro refuses writes with EROFS;
 * - an unexported device is invisible; unexporting removes a device from
 *   every mount;
 * - /localdev links B's own devices;
 * - remotedev-fuse SIGKILLed: the agent unmounts the dead mount and mounts
 *   again;
 * - B's agent stops: its device stays on A's mount and reading it is EIO;
 * - two machines that join with the same name at once: one wins, the other
 *   gets NAME_TAKEN.
 */
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import t from 'tap';
import { type Agent, startAgent } from '../../services/agent/agent.ts';
import { isMounted, unmount } from '../../services/agent/remotedev-process.ts';
import { createClient } from '../../services/client/index.ts';
import { adminClusteradm } from '../harness/clusteradm.ts';
import { startClusterdReplicas } from '../harness/clusterd.ts';
import { joinNode } from '../harness/node.ts';
import { until } from '../harness/until.ts';
import { createImage, errnoOf, remotedevBinaries, sh } from './remotedev-fixtures.ts';

const bins = remotedevBinaries();
const MiB = 1024 * 1024;
const SIZE = 64 * MiB;
const NAMES = ['rd-a', 'rd-b', 'rd-c'] as const;

const cd = await startClusterdReplicas({ count: 1, store: { backend: 'embedded' } });
t.teardown(() => cd.destroy());
const dir = await mkdtemp(join(tmpdir(), `amalgam-remotedev-${process.pid}-`));
t.teardown(() => rm(dir, { recursive: true, force: true }));
const admin = createClient({ endpoints: cd.urls, ...cd.admin });
t.teardown(() => admin.close());

const clusteradm = adminClusteradm(cd, dir);

const images = {
  disk0: join(dir, 'b-disk0.img'),
  rodisk: join(dir, 'b-rodisk.img'),
  secret: join(dir, 'b-secret.img'),
};
createImage(images.disk0, SIZE);
createImage(images.rodisk, 4 * MiB);
createImage(images.secret, 4 * MiB);

const mounts = Object.fromEntries(NAMES.map((n) => [n, join(dir, n, 'remotedev')])) as Record<
  (typeof NAMES)[number],
  string
>;
const localdevB = join(dir, 'rd-b', 'localdev');
// Whatever happens, no mount of ours outlives the test.
t.teardown(() => {
  for (const m of Object.values(mounts)) unmount(m);
});

async function startNode(name: (typeof NAMES)[number]): Promise<Agent> {
  const home = join(dir, name);
  const { files } = await joinNode(cd, name, { home, contributedBytes: 8 * MiB });
  return startAgent({
    config: {
      server: cd.urls,
      name,
      ...files,
      heartbeatSeconds: 1,
      stateDir: join(home, 'state'),
      pageserver: { binary: bins.pageserver },
      devices: {
        block: false,
        declared:
          name === 'rd-b'
            ? [
                { name: 'disk0', path: images.disk0 },
                { name: 'rodisk', path: images.rodisk },
                { name: 'secret', path: images.secret },
              ]
            : [],
      },
      remotedev: {
        mount: mounts[name],
        binary: bins.fuse,
        extraArgs: ['--timeout-ms', '3000'],
        ...(name === 'rd-b' ? { localdev: localdevB } : {}),
      },
    },
    logger: pino({ level: process.env.AGENT_LOG ?? 'silent' }),
    healthMs: 500,
    resyncMs: 3000,
  });
}

const agents = await Promise.all(NAMES.map(startNode));
t.teardown(() => Promise.all(agents.map((a) => a.close())));
const [agentA, agentB] = agents as [Agent, Agent, Agent];
const mntA = mounts['rd-a'];
const mntC = mounts['rd-c'];

t.test('each agent mounts remotedev-fuse on its own directory', async (t) => {
  for (const [i, name] of NAMES.entries()) {
    const m = agents[i]?.devices().mount;
    t.ok(m, `${name} runs remotedev-fuse`);
    t.ok(isMounted(mounts[name]), `${mounts[name]} is a mount point`);
  }
});

t.test('B reports its declared images; all start unexported and invisible', async (t) => {
  const listed = await until('B to publish its inventory', async () => {
    const list = await admin.devices.list('rd-b');
    return list.length === 3 ? list : undefined;
  });
  t.same(
    listed.map((d) => [d.name, d.kind, d.sizeBytes, d.exportPolicy]),
    [
      ['disk0', 'file', SIZE, 'none'],
      ['rodisk', 'file', 4 * MiB, 'none'],
      ['secret', 'file', 4 * MiB, 'none'],
    ],
  );
  t.same(readdirSync(mntA), [], 'nothing is exported: the mount is empty');
  t.equal(
    errnoOf(() => statSync(join(mntA, 'rd-b', 'disk0'))),
    'ENOENT',
  );
});

t.test("/localdev holds links to B's own devices", async (t) => {
  const links = await until('the /localdev links', () => {
    const names = errnoOf(() => readdirSync(localdevB)) === 'OK' ? readdirSync(localdevB) : [];
    return names.length === 3 ? names.sort() : undefined;
  });
  t.same(links, ['disk0', 'rodisk', 'secret']);
  t.equal(readlinkSync(join(localdevB, 'disk0')), images.disk0);
});

t.test('exported rw on B: dd through A, cmp through C, byte for byte', async (t) => {
  const exported = await clusteradm('dev', 'export', 'rd-b/disk0', '--rw');
  t.equal(exported.code, 0, exported.stderr);
  const onA = join(mntA, 'rd-b', 'disk0');
  const onC = join(mntC, 'rd-b', 'disk0');
  await until('rd-b/disk0 on the mounts of A and C', () =>
    errnoOf(() => statSync(onA)) === 'OK' && errnoOf(() => statSync(onC)) === 'OK'
      ? true
      : undefined,
  );
  t.equal(statSync(onA).size, SIZE, 'the file has the device size');
  t.match(readFileSync(agentB.devices().devicesFile, 'utf8'), `disk0 rw ${images.disk0}`);

  const data = join(dir, 'data');
  writeFileSync(data, randomBytes(SIZE));
  const w = await sh('dd', [
    `if=${data}`,
    `of=${onA}`,
    'bs=1M',
    'conv=notrunc,fsync',
    'status=none',
  ]);
  t.equal(w.code, 0, `dd write through A: ${w.stderr}`);
  const back = join(dir, 'back');
  const r = await sh('dd', [`if=${onC}`, `of=${back}`, 'bs=1M', 'status=none']);
  t.equal(r.code, 0, `dd read through C: ${r.stderr}`);
  const cmp = await sh('cmp', [data, back]);
  t.equal(cmp.code, 0, `read back through C byte for byte: ${cmp.stderr}`);
  const direct = await sh('cmp', [data, onC]);
  t.equal(direct.code, 0, `cmp straight on C's mount: ${direct.stderr}`);
  const disk = await sh('cmp', [data, images.disk0]);
  t.equal(disk.code, 0, `the bytes are on B's image: ${disk.stderr}`);
});

t.test("the agents' /metrics count devices and the mount", async (t) => {
  const text = await (await fetch(agentB.metricsUrl)).text();
  t.match(text, /^amalgam_agent_devices\{state="inventoried"\} 3$/m, 'B has 3 devices');
  t.match(text, /^amalgam_agent_devices\{state="exported"\} 1$/m, 'B exports 1');
  t.match(text, /^amalgam_remotedev_up 1$/m, 'its mount is up');
  const onA = await (await fetch(agentA.metricsUrl)).text();
  t.match(onA, /^amalgam_agent_devices\{state="mounted"\} 1$/m, "A's mount shows 1 device");
});

t.test('exported ro: reads work, writes are EROFS', async (t) => {
  t.equal((await clusteradm('dev', 'export', 'rd-b/rodisk', '--ro')).code, 0);
  const onA = join(mntA, 'rd-b', 'rodisk');
  await until('rd-b/rodisk on A', () => (errnoOf(() => statSync(onA)) === 'OK' ? true : undefined));
  t.equal(
    errnoOf(() => closeSync(openSync(onA, 'r'))),
    'OK',
    'open for reading',
  );
  t.equal(
    errnoOf(() => openSync(onA, 'r+')),
    'EROFS',
    'open for writing is EROFS',
  );
  const dd = await sh('dd', [
    'if=/dev/zero',
    `of=${onA}`,
    'bs=4k',
    'count=1',
    'conv=notrunc',
    'status=none',
  ]);
  t.not(dd.code, 0, 'dd to it fails');
  t.match(dd.stderr, /Read-only file system/);
});

t.test('unexported: invisible on every mount; unexporting takes a device away', async (t) => {
  t.notOk(readdirSync(join(mntA, 'rd-b')).includes('secret'), 'never exported: not listed');
  t.equal(
    errnoOf(() => openSync(join(mntA, 'rd-b', 'secret'), 'r')),
    'ENOENT',
  );
  t.equal(
    errnoOf(() => openSync(join(mntC, 'rd-b', 'secret'), 'r')),
    'ENOENT',
  );

  t.equal((await clusteradm('dev', 'unexport', 'rd-b/rodisk')).code, 0);
  await until('rd-b/rodisk gone from A and C', () =>
    errnoOf(() => statSync(join(mntA, 'rd-b', 'rodisk'))) === 'ENOENT' &&
    errnoOf(() => statSync(join(mntC, 'rd-b', 'rodisk'))) === 'ENOENT'
      ? true
      : undefined,
  );
  t.notMatch(
    readFileSync(agentB.devices().devicesFile, 'utf8'),
    /rodisk/,
    "and from B's page server",
  );
});

t.test(
  'remotedev-fuse SIGKILLed: the agent unmounts the dead mount and mounts again',
  async (t) => {
    const before = agentA.devices().mount;
    t.ok(before);
    process.kill(before?.pid as number, 'SIGKILL');
    const after = await until('a new remotedev-fuse on A', () => {
      const m = agentA.devices().mount;
      return m && m.pid !== before?.pid ? m : undefined;
    });
    t.ok(isMounted(mntA), 'mounted again');
    const onA = join(mntA, 'rd-b', 'disk0');
    await until('rd-b/disk0 on the new mount', () =>
      errnoOf(() => statSync(onA)) === 'OK' ? true : undefined,
    );
    const cmp = await sh('cmp', [join(dir, 'data'), onA]);
    t.equal(cmp.code, 0, `the same bytes through the new mount: ${cmp.stderr}`);
    t.not(after.pid, before?.pid);
  },
);

t.test('two machines start with one name at once: one wins, the other NAME_TAKEN', async (t) => {
  const outcomes = await Promise.allSettled(
    [1, 2].map((i) =>
      joinNode(cd, 'rd-twin', { home: join(dir, `twin-${i}`), contributedBytes: 8 * MiB }),
    ),
  );
  t.equal(outcomes.filter((o) => o.status === 'fulfilled').length, 1, 'exactly one has the name');
  const lost = outcomes.find((o) => o.status === 'rejected') as PromiseRejectedResult | undefined;
  t.equal(lost?.reason?.code, 'NAME_TAKEN', 'the other is told NAME_TAKEN, not renamed');
  t.equal((await admin.nodes.list()).filter((n) => n.name.startsWith('rd-twin')).length, 1);
});

t.test('the owner goes away: its device stays listed and its I/O is EIO, not a hang', async (t) => {
  const onA = join(mntA, 'rd-b', 'disk0');
  await agentB.close(); // B's page server and mount stop with it
  t.notOk(isMounted(mounts['rd-b']), "B's mount is gone with its agent");
  const readFirstBlock = async (): Promise<string> => {
    const r = await sh('dd', [
      `if=${onA}`,
      'of=/dev/null',
      'bs=4k',
      'count=1',
      'iflag=direct',
      'status=none',
    ]);
    return r.code === 0 ? 'OK' : r.stderr;
  };
  const failed = await until('reads of rd-b/disk0 through A to fail', async () => {
    const outcome = await readFirstBlock();
    return outcome === 'OK' ? undefined : outcome;
  });
  t.match(failed, /Input\/output error/, 'EIO');
  t.ok(statSync(onA).isFile(), 'the file is still listed (the last known owner endpoint is kept)');
});

t.test('closing the agents unmounts every mount', async (t) => {
  await Promise.all(agents.map((a) => a.close()));
  for (const name of NAMES) t.notOk(isMounted(mounts[name]), `${name} unmounted`);
});
