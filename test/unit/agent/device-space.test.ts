/**
 * The agent's device space against a fake control plane (no socket, no
 * native process): it publishes the inventory only when it changed, follows
 * `devices/` (DeviceView[]) and `heartbeats/` (liveness) events into the two files (rewritten only when
 * their content changes, the page server told each time), keeps an owner's
 * last endpoint when its heartbeat lapses, and keeps /localdev in step
 * (touching nothing there but its own symlinks).
 */
import {
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  readlink,
  rm,
  symlink,
  writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import t from 'tap';
import { startDeviceSpace } from '../../../services/agent/device-space.ts';
import type {
  DeviceInventoryItem,
  DeviceView,
  NodeView,
  ResourceEvent,
} from '../../../services/api/contracts.ts';
import type { AmalgamClient } from '../../../services/client/index.ts';

/** An async iterable the test pushes events into. */
function channel() {
  const queue: ResourceEvent[] = [];
  let wake: (() => void) | undefined;
  let closed = false;
  let revision = 1;
  return {
    push(event: Omit<ResourceEvent, 'revision'>) {
      queue.push({ ...event, revision: revision++ });
      wake?.();
    },
    watch: {
      async *[Symbol.asyncIterator]() {
        while (!closed) {
          const next = queue.shift();
          if (next) yield next;
          else await new Promise<void>((r) => (wake = r));
        }
      },
      async close() {
        closed = true;
        wake?.();
      },
    },
  };
}

/** The `devices/<node>` watch value: the node's `DeviceView[]` (what GET /v1/devices?node= answers). */
const views = (node: string, devices: Record<string, Partial<DeviceView>>): DeviceView[] =>
  Object.entries(devices).map(([name, d]) => ({
    name,
    node,
    kind: 'file',
    path: `/img/${node}-${name}`,
    sizeBytes: 1024,
    readOnly: false,
    major: null,
    minor: null,
    parent: null,
    partitions: [],
    exportPolicy: 'none',
    present: true,
    updatedAt: new Date(0).toISOString(),
    ...d,
  }));

const until = async (what: string, check: () => Promise<boolean> | boolean): Promise<void> => {
  const deadline = Date.now() + 10_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
};

const lines = async (file: string): Promise<string[]> =>
  (await readFile(file, 'utf8')).split('\n').filter((l) => l !== '' && !l.startsWith('#'));

t.test('files follow the control plane; the inventory is published when it changes', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'amalgam-devspace-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const devicesWatch = channel();
  const beatsWatch = channel();
  const reports: DeviceInventoryItem[][] = [];
  const client = {
    devices: {
      list: async (): Promise<DeviceView[]> => [],
      report: async (_node: string, items: DeviceInventoryItem[]) => {
        reports.push(items);
        return [];
      },
    },
    nodes: {
      list: async (): Promise<NodeView[]> =>
        [
          { name: 'a', pageserver: { address: '127.0.0.1:7001', tls: false } },
          { name: 'b', pageserver: null },
        ] as NodeView[],
    },
    watch: ({ prefix }: { prefix: string }) => {
      prefixes.push(prefix);
      return prefix === 'devices/' ? devicesWatch.watch : beatsWatch.watch;
    },
  } as unknown as AmalgamClient;
  const prefixes: string[] = [];

  // Something that is not ours in /localdev stays.
  const localdev = join(dir, 'localdev');
  await mkdir(localdev);
  await writeFile(join(localdev, 'README'), 'not a link');
  await symlink('/img/old', join(localdev, 'old'));

  let hups = 0;
  const space = await startDeviceSpace({
    node: 'a',
    client,
    logger: pino({ level: 'silent' }),
    stateDir: join(dir, 'state'),
    // A mount whose daemon cannot start: the agent keeps retrying it, and keeps
    // the files (which is all this test looks at) for when it runs.
    remotedev: { localdev, mount: join(dir, 'mnt'), binary: join(dir, 'no-such-binary') },
    resyncMs: 60_000,
    onPageServerDevicesChanged: () => {
      hups++;
    },
  });
  t.teardown(() => space.close());
  t.same(await lines(space.devicesFile), [], 'both files exist from the start, empty');
  t.equal(space.mount(), null, 'no daemon runs');
  t.same(prefixes.sort(), ['devices/', 'heartbeats/'], 'with a mount: every device and endpoint');
  t.same(await lines(space.treeFile), []);

  const disk: DeviceInventoryItem = {
    name: 'disk0',
    kind: 'file',
    path: '/img/a-disk0',
    sizeBytes: 1024,
    readOnly: false,
    partitions: [],
  };
  space.inventory([disk]);
  space.inventory([disk]);
  await until('one report', () => reports.length === 1);
  await new Promise((r) => setTimeout(r, 50));
  t.equal(reports.length, 1, 'the same inventory twice is published once');
  await until(
    'the /localdev link',
    async () => (await readlink(join(localdev, 'disk0')).catch(() => '')) === '/img/a-disk0',
  );
  t.same(
    (await readdir(localdev)).sort(),
    ['README', 'disk0'],
    'a stale link of ours is removed, other files stay',
  );

  devicesWatch.push({
    type: 'put',
    key: 'devices/a',
    value: views('a', { disk0: { exportPolicy: 'rw' } }),
  });
  devicesWatch.push({
    type: 'put',
    key: 'devices/b',
    value: views('b', { sdb: { exportPolicy: 'ro', sizeBytes: 512 }, hidden: {} }),
  });
  await until('the page server file', async () => (await lines(space.devicesFile)).length === 1);
  t.same(await lines(space.devicesFile), ['disk0 rw /img/a-disk0']);
  t.equal(hups, 1, 'the page server was told once');
  // b has no endpoint yet: its device waits; a's is there.
  t.same(await lines(space.treeFile), ['a disk0 1024 rw 127.0.0.1:7001 plain']);

  beatsWatch.push({
    type: 'put',
    key: 'heartbeats/b',
    value: {
      name: 'b',
      lastHeartbeatAt: new Date(1).toISOString(),
      pageserver: { address: '127.0.0.1:7002', tls: true },
    },
  });
  await until('b in the tree', async () => (await lines(space.treeFile)).length === 2);
  t.same(await lines(space.treeFile), [
    'a disk0 1024 rw 127.0.0.1:7001 plain',
    'b sdb 512 ro 127.0.0.1:7002 tls',
  ]);
  // An endpoint named by a host name is written as its address.
  beatsWatch.push({
    type: 'put',
    key: 'heartbeats/b',
    value: {
      name: 'b',
      lastHeartbeatAt: new Date(1).toISOString(),
      pageserver: { address: 'localhost:7002', tls: true },
    },
  });
  await until('b by address', async () =>
    (await lines(space.treeFile)).some((l) => / (127\.0\.0\.1|\[::1\]):7002 tls$/.test(l)),
  );
  beatsWatch.push({
    type: 'put',
    key: 'heartbeats/b',
    value: {
      name: 'b',
      lastHeartbeatAt: new Date(1).toISOString(),
      pageserver: { address: '127.0.0.1:7002', tls: true },
    },
  });
  await until('b back', async () =>
    (await lines(space.treeFile)).includes('b sdb 512 ro 127.0.0.1:7002 tls'),
  );
  // b's heartbeat lapses: its endpoint stays (I/O to it will say EIO, not vanish).
  beatsWatch.push({ type: 'delete', key: 'heartbeats/b', value: null });
  beatsWatch.push({
    type: 'put',
    key: 'heartbeats/a',
    value: {
      name: 'a',
      lastHeartbeatAt: new Date(2).toISOString(),
      pageserver: { address: '127.0.0.1:7001', tls: false },
    },
  });
  await new Promise((r) => setTimeout(r, 50));
  t.equal((await lines(space.treeFile)).length, 2, 'a lapsed heartbeat keeps the last endpoint');

  devicesWatch.push({ type: 'put', key: 'devices/a', value: views('a', { disk0: {} }) });
  await until('unexported', async () => (await lines(space.devicesFile)).length === 0);
  t.equal(hups, 2, 'told again');
  t.same(await lines(space.treeFile), ['b sdb 512 ro 127.0.0.1:7002 tls']);
  devicesWatch.push({ type: 'delete', key: 'devices/b', value: null });
  await until('b removed', async () => (await lines(space.treeFile)).length === 0);
  t.equal(hups, 2, 'a change elsewhere does not touch the page server');
  t.same(
    (await readdir(join(dir, 'state'))).sort(),
    ['pageserver-devices', 'remotedev-tree'],
    'no temp file is left behind',
  );
});

t.test("without a mount: only this node's devices, no heartbeats", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'amalgam-devspace-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const own = channel();
  const prefixes: string[] = [];
  const listed: (string | undefined)[] = [];
  const client = {
    devices: {
      list: async (node?: string): Promise<DeviceView[]> => {
        listed.push(node);
        return [];
      },
      report: async () => [],
    },
    nodes: { list: async () => [] },
    watch: ({ prefix }: { prefix: string }) => {
      prefixes.push(prefix);
      return own.watch;
    },
  } as unknown as AmalgamClient;
  const space = await startDeviceSpace({
    node: 'a',
    client,
    logger: pino({ level: 'silent' }),
    stateDir: join(dir, 'state'),
    resyncMs: 60_000,
    onPageServerDevicesChanged: () => {},
  });
  t.teardown(() => space.close());
  await until('the watch', () => prefixes.length === 1 && listed.length === 1);
  t.same(prefixes, ['devices/a']);
  t.same(listed, ['a'], 'the list asks for this node only');
  own.push({ type: 'put', key: 'devices/ab', value: views('ab', { x: { exportPolicy: 'rw' } }) });
  own.push({ type: 'put', key: 'devices/a', value: views('a', { disk0: { exportPolicy: 'ro' } }) });
  await until('own device served', async () => (await lines(space.devicesFile)).length === 1);
  t.same(await lines(space.devicesFile), ['disk0 ro /img/a-disk0'], 'a node named ab is not a');
});
