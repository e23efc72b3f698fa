import t from 'tap';
import { isAmalgamError } from '../../../services/core/errors.ts';
import {
  isValidNodeName,
  MAX_LABELS,
  validateLabels,
  validateNodeName,
  validateSegmentId,
} from '../../../services/core/names.ts';

function failure(fn: () => unknown): { code: string; field: unknown; reason: unknown } | undefined {
  try {
    fn();
  } catch (err) {
    if (isAmalgamError(err)) {
      return { code: err.code, field: err.details.field, reason: err.details.reason };
    }
    throw err;
  }
  return undefined;
}

t.test('valid node names are RFC 1123 labels', async (t) => {
  for (const name of ['a', '0', 'node-1', '1node', 'a--b', 'x'.repeat(63)]) {
    t.equal(
      failure(() => validateNodeName(name)),
      undefined,
      name,
    );
    t.ok(isValidNodeName(name));
  }
});

t.test('invalid node names are INVALID_ARGUMENT naming the field', async (t) => {
  const cases: [unknown, string][] = [
    ['', 'length'],
    ['x'.repeat(64), 'length'],
    ['Node', 'format'],
    ['-a', 'format'],
    ['a-', 'format'],
    ['a_b', 'format'],
    ['a.b', 'format'],
    ['a b', 'format'],
    ['nöde', 'format'],
    ['a\n', 'format'],
    [42, 'type'],
    [null, 'type'],
    [undefined, 'type'],
  ];
  for (const [name, reason] of cases) {
    t.same(
      failure(() => validateNodeName(name)),
      { code: 'INVALID_ARGUMENT', field: 'name', reason },
      JSON.stringify(name),
    );
    t.notOk(isValidNodeName(name));
  }
  t.equal(failure(() => validateNodeName('Bad', 'spec.node'))?.field, 'spec.node');
});

t.test('labels: simple Kubernetes-style keys and values', async (t) => {
  for (const labels of [
    {},
    { app: 'web' },
    { 'amalgam.io/role': 'storage', 'Zone_1.a': '', tier: 'A-1_b.c' },
    Object.create(null),
  ]) {
    t.equal(
      failure(() => validateLabels(labels)),
      undefined,
      JSON.stringify(labels),
    );
  }
  const tooMany = Object.fromEntries(
    Array.from({ length: MAX_LABELS + 1 }, (_, i) => [`k${i}`, 'v']),
  );
  const cases: [unknown, string, string][] = [
    [null, 'labels', 'type'],
    [['a'], 'labels', 'type'],
    ['a=b', 'labels', 'type'],
    [new Map(), 'labels', 'type'],
    [tooMany, 'labels', 'length'],
    [{ '': 'v' }, 'labels[""]', 'key'],
    [{ '-a': 'v' }, 'labels["-a"]', 'key'],
    [{ ['k'.repeat(64)]: 'v' }, `labels["${'k'.repeat(64)}"]`, 'key'],
    [{ 'Amalgam.io/role': 'v' }, 'labels["Amalgam.io/role"]', 'key'],
    [{ '/role': 'v' }, 'labels["/role"]', 'key'],
    [{ 'a/b/c': 'v' }, 'labels["a/b/c"]', 'key'],
    [{ 'amalgam.io/': 'v' }, 'labels["amalgam.io/"]', 'key'],
    [{ app: 'has space' }, 'labels["app"]', 'value'],
    [{ app: '-web' }, 'labels["app"]', 'value'],
    [{ app: 'v'.repeat(64) }, 'labels["app"]', 'value'],
    [{ app: 1 }, 'labels["app"]', 'value'],
  ];
  for (const [labels, field, reason] of cases) {
    t.same(
      failure(() => validateLabels(labels)),
      { code: 'INVALID_ARGUMENT', field, reason },
      field,
    );
  }
  t.equal(failure(() => validateLabels(null, 'spec.labels'))?.field, 'spec.labels');
});

t.test('segment ids', async (t) => {
  for (const id of ['s', 'seg-1', '1f0e3c1a-7d2b-4e0f-9c1a-0d2b4e0f9c1a', 'a.b', 'x'.repeat(253)]) {
    t.equal(
      failure(() => validateSegmentId(id)),
      undefined,
      id,
    );
  }
  for (const id of ['', 'x'.repeat(254), 'Seg', 'seg_1', '.a', 'a.', 'a/b', 3]) {
    t.same(failure(() => validateSegmentId(id))?.field, 'id', JSON.stringify(id));
  }
});
