import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import {
  loadAdminConfig,
  parseAdminConfig,
  resolveAdminConfigPath,
  resolveHome,
  resolveNodeHome,
} from '../../../services/cli/config.ts';
import { CliError } from '../../../services/cli/errors.ts';

const environment = (env: Record<string, string> = {}) => ({
  env,
  userHome: '/home/user',
  cwd: '/work',
});

t.test('home: --home, then $AMALGAM_HOME, then ~/.amalgam', async (t) => {
  t.equal(resolveHome(undefined, environment()), '/home/user/.amalgam');
  t.equal(resolveHome(undefined, environment({ AMALGAM_HOME: '/srv/amalgam' })), '/srv/amalgam');
  t.equal(resolveHome(undefined, environment({ AMALGAM_HOME: '' })), '/home/user/.amalgam');
  t.equal(resolveHome('h', environment({ AMALGAM_HOME: '/srv/amalgam' })), '/work/h');
  t.equal(resolveNodeHome(undefined, environment()), '/home/user/.amalgam-node');
  t.equal(resolveNodeHome('/n', environment()), '/n');
});

t.test('config: --config, then $AMALGAM_CONFIG, then <home>/admin.json', async (t) => {
  const env = environment({ AMALGAM_CONFIG: '/etc/amalgam/admin.json', AMALGAM_HOME: '/srv/a' });
  t.same(resolveAdminConfigPath({ config: 'my.json', home: '/x' }, env), {
    path: '/work/my.json',
    source: '--config',
  });
  t.same(resolveAdminConfigPath({ home: '/x' }, env), {
    path: '/etc/amalgam/admin.json',
    source: '$AMALGAM_CONFIG',
  });
  t.same(resolveAdminConfigPath({ home: '/x' }, environment({ AMALGAM_HOME: '/srv/a' })), {
    path: '/x/admin.json',
    source: 'home',
  });
  t.same(resolveAdminConfigPath({}, environment({ AMALGAM_HOME: '/srv/a' })), {
    path: '/srv/a/admin.json',
    source: 'home',
  });
  t.same(resolveAdminConfigPath({}, environment()), {
    path: '/home/user/.amalgam/admin.json',
    source: 'home',
  });
});

t.test('the admin configuration is checked field by field', async (t) => {
  const good = { server: ['https://a:6443'], caFile: 'ca', certFile: 'c', keyFile: 'k' };
  t.same(parseAdminConfig(JSON.stringify(good), 'f'), good);
  t.same(parseAdminConfig(JSON.stringify({ ...good, server: 'https://a:6443' }), 'f').server, [
    'https://a:6443',
  ]);
  const bad = [
    'not json',
    '[]',
    JSON.stringify({ ...good, server: [] }),
    JSON.stringify({ ...good, server: ['http://a:6443'] }),
    JSON.stringify({ ...good, caFile: '' }),
    JSON.stringify({ ...good, keyFile: undefined }),
  ];
  for (const text of bad) {
    const err = (() => {
      try {
        parseAdminConfig(text, 'f');
      } catch (e) {
        return e;
      }
    })();
    t.ok(err instanceof CliError && err.code === 'CONFIG_INVALID', text);
  }
});

t.test('loading reads the PEM files, relative to the configuration', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'amalgam-config-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'ca.crt'), 'CA');
  await writeFile(join(dir, 'admin.crt'), 'CERT');
  await writeFile(join(dir, 'admin.key'), 'KEY');
  const path = join(dir, 'admin.json');
  await writeFile(
    path,
    JSON.stringify({
      server: ['https://127.0.0.1:6443'],
      caFile: 'ca.crt',
      certFile: 'admin.crt',
      keyFile: join(dir, 'admin.key'),
    }),
  );
  const loaded = await loadAdminConfig({ path, source: '--config' });
  t.same([loaded.ca, loaded.cert, loaded.key], ['CA', 'CERT', 'KEY']);

  await t.rejects(loadAdminConfig({ path: join(dir, 'missing.json'), source: 'home' }), {
    code: 'CONFIG_NOT_FOUND',
  });
  await writeFile(
    path,
    JSON.stringify({ server: ['https://a:1'], caFile: 'nope', certFile: 'c', keyFile: 'k' }),
  );
  await t.rejects(loadAdminConfig({ path, source: '--config' }), { code: 'CONFIG_INVALID' });
});
