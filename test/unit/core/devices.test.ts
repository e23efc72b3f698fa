import t, { type Test } from 'tap';
import {
  applyInventory,
  createDeviceTable,
  type DeviceFacts,
  effectivePolicy,
  isValidDeviceName,
  parseDeviceRef,
  setExportPolicy,
  validateDeviceName,
  validateExportPolicy,
  validateInventory,
} from '../../../services/core/devices.ts';
import { AmalgamError } from '../../../services/core/errors.ts';

const disk = (name: string, extra: Partial<DeviceFacts> = {}): DeviceFacts => ({
  name,
  kind: 'file',
  path: `/images/${name}.img`,
  sizeBytes: 64 * 1024 * 1024,
  readOnly: false,
  major: null,
  minor: null,
  parent: null,
  partitions: [],
  ...extra,
});

function refused(t: Test, fn: () => unknown, code: string, field?: string): void {
  try {
    fn();
    t.fail(`expected ${code}`);
  } catch (err) {
    t.ok(err instanceof AmalgamError, 'an AmalgamError');
    t.equal((err as AmalgamError).code, code);
    if (field !== undefined) t.equal((err as AmalgamError).details.field, field);
  }
}

t.test('device names are one safe path component', async (t) => {
  for (const ok of ['sda', 'nvme0n1p2', 'dm-0', 'disk0', 'md127', 'a', 'x.img_1']) {
    t.ok(isValidDeviceName(ok), ok);
  }
  for (const bad of [
    '',
    'ttyS0',
    '.',
    '..',
    'a/b',
    'a b',
    '-a',
    'a-',
    '.hidden',
    'ä',
    'x'.repeat(64),
  ]) {
    t.notOk(isValidDeviceName(bad), JSON.stringify(bad));
  }
  refused(t, () => validateDeviceName('../etc', 'device'), 'INVALID_ARGUMENT', 'device');
  refused(t, () => validateDeviceName(7, 'device'), 'INVALID_ARGUMENT', 'device');
});

t.test('export policies: none, ro, rw and nothing else', async (t) => {
  for (const p of ['none', 'ro', 'rw']) t.equal(validateExportPolicy(p), p);
  refused(t, () => validateExportPolicy('write'), 'INVALID_ARGUMENT', 'policy');
});

t.test('an inventory is checked field by field, naming the field', async (t) => {
  const good = validateInventory([
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
    {
      name: 'sda1',
      kind: 'block',
      path: '/dev/sda1',
      sizeBytes: 256,
      readOnly: false,
      major: 8,
      minor: 1,
      parent: 'sda',
      partitions: [],
    },
    {
      name: 'disk0',
      kind: 'file',
      path: '/img/d0',
      sizeBytes: 4096,
      readOnly: true,
      partitions: [],
    },
  ]);
  t.same(
    good[2],
    disk('disk0', { path: '/img/d0', sizeBytes: 4096, readOnly: true }),
    'absent numbers and parent become null',
  );
  t.equal(good[1]?.parent, 'sda');
  const item = {
    name: 'd',
    kind: 'file',
    path: '/x',
    sizeBytes: 1,
    readOnly: false,
    partitions: [],
  };
  refused(t, () => validateInventory({}), 'INVALID_ARGUMENT', 'devices');
  refused(t, () => validateInventory([item, item]), 'INVALID_ARGUMENT', 'devices[1].name');
  refused(
    t,
    () => validateInventory([{ ...item, kind: 'tape' }]),
    'INVALID_ARGUMENT',
    'devices[0].kind',
  );
  refused(
    t,
    () => validateInventory([{ ...item, path: 'relative' }]),
    'INVALID_ARGUMENT',
    'devices[0].path',
  );
  refused(
    t,
    () => validateInventory([{ ...item, path: '/with space' }]),
    'INVALID_ARGUMENT',
    'devices[0].path',
  );
  refused(
    t,
    () => validateInventory([{ ...item, sizeBytes: -1 }]),
    'INVALID_ARGUMENT',
    'devices[0].sizeBytes',
  );
  refused(
    t,
    () => validateInventory([{ ...item, sizeBytes: 2 ** 53 }]),
    'INVALID_ARGUMENT',
    'devices[0].sizeBytes',
  );
  refused(
    t,
    () => validateInventory([{ ...item, major: -1 }]),
    'INVALID_ARGUMENT',
    'devices[0].major',
  );
  refused(
    t,
    () => validateInventory([{ ...item, parent: '../x' }]),
    'INVALID_ARGUMENT',
    'devices[0].parent',
  );
  refused(
    t,
    () => validateInventory([{ ...item, partitions: ['ok', 'no/'] }]),
    'INVALID_ARGUMENT',
    'devices[0].partitions[1]',
  );
  refused(
    t,
    () => validateInventory(Array.from({ length: 257 }, (_, i) => ({ ...item, name: `d${i}` }))),
    'INVALID_ARGUMENT',
    'devices',
  );
});

t.test(
  'inventory: new devices start unexported; policies survive; absent ones are kept only when exported',
  async (t) => {
    let table = createDeviceTable('b');
    let next = applyInventory(table, [disk('disk0'), disk('disk1')], 1000);
    t.ok(next.changed);
    table = next.table;
    t.same(Object.keys(table.devices), ['disk0', 'disk1']);
    t.equal(table.devices.disk0?.exportPolicy, 'none');
    t.equal(table.devices.disk0?.present, true);

    next = applyInventory(table, [disk('disk1'), disk('disk0')], 2000);
    t.notOk(next.changed, 'the same inventory in another order changes nothing');

    table = setExportPolicy(table, 'disk0', 'rw', 3000).table;
    next = applyInventory(table, [disk('disk0', { sizeBytes: 128 }), disk('disk1')], 4000);
    t.ok(next.changed, 'a new size is a change');
    t.equal(next.table.devices.disk0?.exportPolicy, 'rw', 'the policy survives a new report');
    t.equal(next.table.devices.disk0?.sizeBytes, 128);
    t.equal(next.table.devices.disk0?.updatedAt, 4000);
    t.equal(next.table.devices.disk1?.updatedAt, 1000, 'an unchanged device keeps its record');
    table = next.table;

    next = applyInventory(table, [], 5000);
    t.ok(next.changed);
    t.same(Object.keys(next.table.devices), ['disk0'], 'the unexported device is dropped');
    t.equal(next.table.devices.disk0?.present, false, 'the exported one is kept, absent');
    t.equal(next.table.devices.disk0?.exportPolicy, 'rw');
    t.equal(
      effectivePolicy(next.table.devices.disk0 as never),
      'none',
      'an absent device is not served',
    );
    t.notOk(applyInventory(next.table, [], 6000).changed, 'still absent: no change');

    const back = applyInventory(next.table, [disk('disk0', { sizeBytes: 128 })], 7000);
    t.equal(back.table.devices.disk0?.present, true, 'it comes back');
    t.equal(effectivePolicy(back.table.devices.disk0 as never), 'rw', 'with its policy');
  },
);

t.test('policy changes: unknown device, read-only device, character device', async (t) => {
  let table = applyInventory(
    createDeviceTable('b'),
    [disk('disk0'), disk('cd', { readOnly: true }), disk('tty0', { kind: 'char', sizeBytes: 0 })],
    1,
  ).table;
  refused(t, () => setExportPolicy(table, 'nope', 'ro', 2), 'DEVICE_NOT_FOUND', 'device');
  refused(t, () => setExportPolicy(table, 'cd', 'rw', 2), 'INVALID_ARGUMENT', 'policy');
  refused(t, () => setExportPolicy(table, 'tty0', 'ro', 2), 'INVALID_ARGUMENT', 'policy');
  t.notOk(setExportPolicy(table, 'tty0', 'none', 2).changed, 'unexporting is always allowed');
  const ro = setExportPolicy(table, 'cd', 'ro', 2);
  t.ok(ro.changed);
  table = ro.table;
  t.equal(effectivePolicy(table.devices.cd as never), 'ro');
  t.notOk(setExportPolicy(table, 'cd', 'ro', 3).changed, 'the same policy again changes nothing');
  // A device exported rw that its machine later reports read-only is served ro.
  table = setExportPolicy(table, 'disk0', 'rw', 4).table;
  const lowered = applyInventory(
    table,
    [
      disk('disk0', { readOnly: true }),
      disk('cd', { readOnly: true }),
      disk('tty0', { kind: 'char', sizeBytes: 0 }),
    ],
    5,
  ).table;
  t.equal(lowered.devices.disk0?.exportPolicy, 'rw');
  t.equal(effectivePolicy(lowered.devices.disk0 as never), 'ro');
});

t.test('NODE/DEV references', async (t) => {
  t.same(parseDeviceRef('b/disk0'), { node: 'b', device: 'disk0' });
  for (const bad of ['disk0', '/disk0', 'b/', 'a/b/c']) {
    t.equal(parseDeviceRef(bad), undefined, bad);
  }
});
