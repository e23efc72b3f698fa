/**
 * The agent's device side without I/O: the device fingerprinter on a fixture
 * sysfs, the two files of the native data path as rendered from the control
 * plane's view, and the device config checks.
 */
import t from 'tap';
import { checkDeviceConfig } from '../../../services/agent/config.ts';
import {
  endpointHost,
  localdevLinks,
  pageServerDevicesFile,
  treeFile,
  withAddress,
} from '../../../services/agent/device-files.ts';
import { devices } from '../../../services/agent/fingerprint/devices.ts';
import type { FingerprintEnv, PathStat } from '../../../services/agent/fingerprint/index.ts';
import { fingerprint } from '../../../services/agent/fingerprint/index.ts';
import type { DeviceView, PageServerEndpoint } from '../../../services/api/contracts.ts';

/** A fake machine: sysfs files and directories, and stat results. */
function fakeEnv(
  files: Record<string, string>,
  stats: Record<string, PathStat> = {},
  config: FingerprintEnv['devices'] = {},
): FingerprintEnv {
  return {
    readText: async (path) => {
      const text = files[path];
      if (text === undefined) throw Object.assign(new Error(`ENOENT ${path}`), { code: 'ENOENT' });
      return text;
    },
    listDir: async (dir) => {
      const names = new Set<string>();
      for (const path of Object.keys(files)) {
        if (path.startsWith(`${dir}/`))
          names.add(path.slice(dir.length + 1).split('/')[0] as string);
      }
      if (names.size === 0) throw new Error(`ENOENT ${dir}`);
      return [...names];
    },
    stat: async (path) => {
      const st = stats[path];
      if (!st) throw new Error(`ENOENT ${path}`);
      return st;
    },
    devices: config,
  };
}

const SYS: Record<string, string> = {
  '/sys/class/block/sda/size': '2097152\n',
  '/sys/class/block/sda/dev': '8:0\n',
  '/sys/class/block/sda/ro': '0\n',
  '/sys/class/block/sda/sda1/partition': '1\n',
  '/sys/class/block/sda/sda2/partition': '2\n',
  '/sys/class/block/sda1/size': '1048576\n',
  '/sys/class/block/sda1/dev': '8:1\n',
  '/sys/class/block/sda1/ro': '0\n',
  '/sys/class/block/sda1/partition': '1\n',
  '/sys/class/block/sda2/size': '1046528\n',
  '/sys/class/block/sda2/dev': '8:2\n',
  '/sys/class/block/sda2/ro': '1\n',
  '/sys/class/block/sda2/partition': '2\n',
  '/sys/class/block/sr0/size': '2048\n',
  '/sys/class/block/sr0/dev': '11:0\n',
  '/sys/class/block/sr0/ro': '1\n',
  '/sys/class/block/loop0/size': '0\n',
  '/sys/class/block/loop0/dev': '7:0\n',
  '/sys/class/block/loop0/ro': '0\n',
  '/sys/class/block/Weird/size': '8\n',
  '/sys/dev/block/7:3/size': '8\n',
};

t.test('block devices from sysfs: sizes, numbers, ro, partitions and their disk', async (t) => {
  const { devices: found } = await devices.probe(fakeEnv(SYS));
  t.same(
    found?.map((d) => d.name),
    ['sda', 'sda1', 'sda2', 'sr0'],
    'empty loop devices and names that cannot be a path component are left out',
  );
  const [sda, sda1, sda2, sr0] = found ?? [];
  t.same(sda, {
    name: 'sda',
    kind: 'block',
    path: '/dev/sda',
    sizeBytes: 2097152 * 512,
    readOnly: false,
    major: 8,
    minor: 0,
    partitions: ['sda1', 'sda2'],
  });
  t.equal(sda1?.parent, 'sda');
  t.same(sda1?.partitions, []);
  t.equal(sda2?.readOnly, true);
  t.equal(sr0?.readOnly, true);
  t.equal(sr0?.parent, undefined);
});

t.test('declared files and devices, selected char devices; declared names win', async (t) => {
  const stats: Record<string, PathStat> = {
    '/img/disk0.img': { kind: 'file', size: 64 << 20, major: 0, minor: 0, writable: true },
    '/img/ro.img': { kind: 'file', size: 4096, major: 0, minor: 0, writable: false },
    '/dev/loop3': { kind: 'block', size: 0, major: 7, minor: 3, writable: true },
    '/dev/ttyusb0': { kind: 'char', size: 0, major: 188, minor: 0, writable: true },
    '/img/dir': { kind: 'other', size: 0, major: 0, minor: 0, writable: true },
  };
  const env = fakeEnv(SYS, stats, {
    declared: [
      { name: 'disk0', path: '/img/disk0.img' },
      { name: 'cd', path: '/img/ro.img' },
      { name: 'sda', path: '/dev/loop3', readOnly: true },
    ],
    char: ['/dev/ttyusb0'],
  });
  const found = (await devices.probe(env)).devices ?? [];
  const byName = new Map(found.map((d) => [d.name, d]));
  t.same(byName.get('disk0'), {
    name: 'disk0',
    kind: 'file',
    path: '/img/disk0.img',
    sizeBytes: 64 << 20,
    readOnly: false,
    partitions: [],
  });
  t.equal(byName.get('cd')?.readOnly, true, 'a file the agent cannot write is read-only');
  t.same(
    [byName.get('sda')?.path, byName.get('sda')?.sizeBytes, byName.get('sda')?.readOnly],
    ['/dev/loop3', 8 * 512, true],
    'the declared sda (a block device: size from /sys/dev/block) replaces sysfs sda',
  );
  t.same([byName.get('ttyusb0')?.kind, byName.get('ttyusb0')?.sizeBytes], ['char', 0]);

  const broken = fakeEnv(SYS, stats, { block: false, declared: [{ name: 'x', path: '/img/dir' }] });
  const result = await fingerprint(broken, [devices]);
  t.equal(result.devices, undefined, 'a failed probe reports no list (never an empty one)');
  t.equal(result.errors[0]?.name, 'devices');
  const none = await fingerprint(fakeEnv(SYS, stats, { block: false }), [devices]);
  t.same(none.devices, [], 'nothing found is an empty list');
});

const view = (node: string, name: string, extra: Partial<DeviceView> = {}): DeviceView => ({
  node,
  name,
  kind: 'file',
  path: `/img/${name}.img`,
  sizeBytes: 1 << 20,
  readOnly: false,
  major: null,
  minor: null,
  parent: null,
  partitions: [],
  exportPolicy: 'none',
  present: true,
  updatedAt: '2026-01-01T00:00:00.000Z',
  ...extra,
});

t.test(
  'the page server file: this node, exported, present; ro when it cannot be written',
  async (t) => {
    const all = [
      view('b', 'disk0', { exportPolicy: 'rw' }),
      view('b', 'disk1', { exportPolicy: 'ro' }),
      view('b', 'hidden'),
      view('b', 'gone', { exportPolicy: 'rw', present: false }),
      view('b', 'cdrom', { exportPolicy: 'rw', readOnly: true }),
      view('c', 'disk0', { exportPolicy: 'rw' }),
    ];
    const text = pageServerDevicesFile('b', all);
    const lines = text.split('\n').filter((l) => l !== '' && !l.startsWith('#'));
    t.same(lines, [
      'cdrom ro /img/cdrom.img',
      'disk0 rw /img/disk0.img',
      'disk1 ro /img/disk1.img',
    ]);
    t.match(text, /^# /, 'a comment says who writes it');
  },
);

t.test('the tree file: every exported device with its owner page server', async (t) => {
  const endpoints = new Map<string, PageServerEndpoint>([
    ['b', { address: '127.0.0.1:7001', tls: false }],
    ['c', { address: '[::1]:7002', tls: true }],
    ['e', { address: 'node-e.example:7003', tls: true }],
  ]);
  const all = [
    view('c', 'sdb', { exportPolicy: 'ro', sizeBytes: 512 }),
    view('b', 'disk0', { exportPolicy: 'rw', sizeBytes: 64 << 20 }),
    view('b', 'hidden'),
    view('d', 'disk0', { exportPolicy: 'rw' }),
    view('e', 'disk0', { exportPolicy: 'rw' }),
  ];
  const lines = treeFile(all, endpoints)
    .split('\n')
    .filter((l) => l !== '' && !l.startsWith('#'));
  t.same(lines, [`b disk0 ${64 << 20} rw 127.0.0.1:7001 plain`, 'c sdb 512 ro [::1]:7002 tls']);
  t.equal(endpointHost('[::1]:7002'), '::1');
  t.equal(
    endpointHost('node-e.example:7003'),
    'node-e.example',
    'a name is left out until resolved',
  );
  t.equal(withAddress('node-e.example:7003', '10.0.0.5'), '10.0.0.5:7003');
  t.equal(withAddress('node-e.example:7003', 'fd00::5'), '[fd00::5]:7003');
  t.same(
    [...localdevLinks([{ name: 'disk0', path: '/img/d0' }]).entries()],
    [['disk0', '/img/d0']],
  );
});

t.test('device config checks name the field', async (t) => {
  const base = { server: ['https://x:1'], name: 'n', certFile: 'c', keyFile: 'k', caFile: 'a' };
  t.doesNotThrow(() =>
    checkDeviceConfig({
      ...base,
      devices: { block: false, declared: [{ name: 'disk0', path: '/img/d0' }] },
      remotedev: { mount: '/remotedev', localdev: '/localdev' },
    }),
  );
  const bad: [unknown, RegExp][] = [
    [{ devices: { block: 'yes' } }, /devices\.block/],
    [{ devices: { char: ['tty'] } }, /devices\.char/],
    [{ devices: { declared: [{ name: 'Disk', path: '/x' }] } }, /devices\.declared\[0\]\.name/],
    [
      {
        devices: {
          declared: [
            { name: 'd', path: '/x' },
            { name: 'd', path: '/y' },
          ],
        },
      },
      /devices\.declared\[1\]\.name: listed twice/,
    ],
    [{ devices: { declared: [{ name: 'd', path: '/a b' }] } }, /devices\.declared\[0\]\.path/],
    [{ remotedev: { mount: '' } }, /remotedev\.mount/],
  ];
  for (const [extra, message] of bad) {
    t.throws(() => checkDeviceConfig({ ...base, ...(extra as object) }), message);
  }
});

t.test('an inventory never outgrows what the control plane keeps', async (t) => {
  const stats: Record<string, PathStat> = {};
  const declared = Array.from({ length: 300 }, (_, i) => {
    const path = `/img/d${i}`;
    stats[path] = { kind: 'file', size: 512, major: 0, minor: 0, writable: true };
    return { name: `d${i}`, path };
  });
  const found = (await devices.probe(fakeEnv(SYS, stats, { declared }))).devices ?? [];
  t.equal(found.length, 256, 'at most 256 devices per node');
  t.ok(
    found.every((d) => d.kind === 'file'),
    'declared devices come first',
  );
});
