/**
 * clusterd's config file: a bad field stops it with INVALID_ARGUMENT naming
 * the field; relative paths are relative to the file.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { loadConfig, parseConfig } from '../../../../services/controlplane/config.ts';
import { AmalgamError } from '../../../../services/core/errors.ts';

const valid = {
  clusterName: 'lab',
  listen: { host: '127.0.0.1', port: 6443 },
  tls: { certFile: 'a.crt', keyFile: 'a.key', caFile: 'ca.crt', caKeyFile: '/abs/ca.key' },
  store: { backend: 'embedded', dataDir: 'data' },
};

function fieldOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    if (err instanceof AmalgamError && err.code === 'INVALID_ARGUMENT') {
      return err.details.field as string;
    }
    throw err;
  }
  return undefined;
}

t.test('a valid config, with paths resolved against the base directory', async (t) => {
  const config = parseConfig(valid, '/etc/amalgam');
  t.equal(config.tls.certFile, '/etc/amalgam/a.crt');
  t.equal(config.tls.caKeyFile, '/abs/ca.key');
  t.same(config.store, { backend: 'embedded', dataDir: '/etc/amalgam/data' });
  const etcd = parseConfig(
    {
      ...valid,
      store: { backend: 'etcd', endpoints: ['http://127.0.0.1:2379'] },
      logLevel: 'debug',
    },
    '/x',
  );
  t.same(etcd.store, { backend: 'etcd', endpoints: ['http://127.0.0.1:2379'] });
  t.equal(etcd.logLevel, 'debug');
});

t.test('each bad field is named', async (t) => {
  const cases: [string, unknown][] = [
    ['config', null],
    ['config', []],
    ['extra', { ...valid, extra: 1 }],
    ['clusterName', { ...valid, clusterName: '' }],
    ['clusterName', { ...valid, clusterName: 'has space' }],
    ['listen', { ...valid, listen: 'x' }],
    ['listen.port', { ...valid, listen: { host: 'h', port: 70000 } }],
    ['listen.port', { ...valid, listen: { host: 'h', port: '80' } }],
    ['listen.host', { ...valid, listen: { port: 1 } }],
    ['listen.extra', { ...valid, listen: { host: 'h', port: 1, extra: true } }],
    ['tls.caKeyFile', { ...valid, tls: { ...valid.tls, caKeyFile: undefined } }],
    ['tls.certFile', { ...valid, tls: { ...valid.tls, certFile: 42 } }],
    ['store.backend', { ...valid, store: { backend: 'sqlite' } }],
    ['store.dataDir', { ...valid, store: { backend: 'embedded' } }],
    ['store.endpoints', { ...valid, store: { backend: 'etcd', endpoints: [] } }],
    [
      'store.endpoints[1]',
      { ...valid, store: { backend: 'etcd', endpoints: ['http://a:1', 'ftp://b'] } },
    ],
    [
      'store.dataDir',
      { ...valid, store: { backend: 'etcd', endpoints: ['http://a:1'], dataDir: 'd' } },
    ],
    ['logLevel', { ...valid, logLevel: 'loud' }],
    ['nodeGraceSeconds', { ...valid, nodeGraceSeconds: 0 }],
    ['bodyLimit', { ...valid, bodyLimit: 1e12 }],
  ];
  for (const [field, value] of cases) {
    t.equal(
      fieldOf(() => parseConfig(value, '/x')),
      field,
      `${JSON.stringify(value).slice(0, 90)}`,
    );
  }
});

t.test('loadConfig: unreadable and non-JSON files are INVALID_ARGUMENT on `config`', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'amalgam-config-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await t.rejects(loadConfig(join(dir, 'missing.json')), {
    code: 'INVALID_ARGUMENT',
    details: { field: 'config' },
  });
  await writeFile(join(dir, 'bad.json'), '{ nope');
  await t.rejects(loadConfig(join(dir, 'bad.json')), {
    code: 'INVALID_ARGUMENT',
    details: { field: 'config' },
  });
  await writeFile(join(dir, 'ok.json'), JSON.stringify(valid));
  const config = await loadConfig(join(dir, 'ok.json'));
  t.equal(config.tls.certFile, join(dir, 'a.crt'), 'relative to the file');
});
