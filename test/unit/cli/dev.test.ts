/** `clusteradm dev ...`: usage errors before anything is sent, and how devices print. */
import t from 'tap';
import type { DeviceView } from '../../../services/api/contracts.ts';
import { describeDevice, deviceRow } from '../../../services/cli/device-format.ts';
import { runClusteradm } from '../../../services/cli/main.ts';
import { captureContext } from './cli-context.ts';

async function run(args: string[]) {
  const { context, out } = captureContext();
  const code = await runClusteradm(args, context);
  return { code, ...out };
}

t.test('usage errors exit 2 before any configuration is read', async (t) => {
  const cases: [string[], RegExp][] = [
    [['dev', 'export', 'b/disk0'], /exactly one of --ro or --rw/],
    [['dev', 'export', 'b/disk0', '--ro', '--rw'], /exactly one of --ro or --rw/],
    [['dev', 'export', 'disk0', '--ro'], /not NODE\/DEV: "disk0"/],
    [['dev', 'unexport', 'a/b/c'], /not NODE\/DEV/],
    [['dev', 'describe'], /missing required argument/],
    [['dev', 'ls', '-o', 'yaml'], /Allowed choices are table, json/],
  ];
  for (const [args, message] of cases) {
    const r = await run(args);
    t.equal(r.code, 2, args.join(' '));
    t.match(r.stderr, message, args.join(' '));
    t.equal(r.stdout, '');
  }
  const noConfig = await run(['dev', 'ls']);
  t.equal(noConfig.code, 1, 'a valid command without an admin configuration fails');
  t.match(noConfig.stderr, /^error: CONFIG_NOT_FOUND/);
});

const device: DeviceView = {
  node: 'node-b',
  name: 'disk0',
  kind: 'file',
  path: '/var/lib/amalgam/disk0.img',
  sizeBytes: 64 * 1024 * 1024,
  readOnly: false,
  major: null,
  minor: null,
  parent: null,
  partitions: [],
  exportPolicy: 'rw',
  present: true,
  updatedAt: '2025-12-31T23:59:00.000Z',
};

t.test('a device prints as a row and as a description', async (t) => {
  const now = Date.parse('2026-01-01T00:00:00Z');
  t.same(deviceRow(device, now), [
    'node-b/disk0',
    'file',
    '64Mi',
    'rw',
    'present',
    '/var/lib/amalgam/disk0.img',
    '60s',
  ]);
  t.same(deviceRow({ ...device, present: false }, now)[4], 'absent');
  const text = describeDevice({ ...device, major: 8, minor: 0, partitions: ['sda1'] }, now);
  t.match(text, /Remote path: +\/remotedev\/node-b\/disk0/);
  t.match(text, /Device number: +8:0/);
  t.match(text, /Partitions: +sda1/);
  t.match(text, /Export: +rw/);
});
