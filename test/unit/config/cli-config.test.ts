/**
 * clusteradm's admin configuration is checked by its JSON Schema
 * (services/cli/config-schema.ts): CONFIG_INVALID names the file
 * (`details.path`) and the field (`details.field`).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { loadAdminConfig, parseAdminConfig } from '../../../services/cli/config.ts';

const good = { server: ['https://a:6443'], caFile: 'ca', certFile: 'c', keyFile: 'k' };

function failure(text: string, path = '/etc/amalgam/admin.json'): unknown {
  try {
    parseAdminConfig(text, path);
  } catch (err) {
    return err;
  }
  return undefined;
}

t.test('unknown fields are ignored; one server is a list of one', async (t) => {
  t.same(parseAdminConfig(JSON.stringify({ ...good, server: 'https://a:6443', x: 1 }), 'f'), {
    ...good,
    server: ['https://a:6443'],
  });
});

t.test('CONFIG_INVALID names the file and the field', async (t) => {
  const path = '/etc/amalgam/admin.json';
  const { keyFile: _keyFile, ...noKey } = good;
  for (const [field, text, words] of [
    ['config', 'not json', undefined],
    ['config', '[]', 'a JSON object is required'],
    ['server', JSON.stringify({ ...good, server: [] }), 'a non-empty list of https:// URLs'],
    ['server[1]', JSON.stringify({ ...good, server: ['https://a:1', 'http://b:1'] }), undefined],
    ['caFile', JSON.stringify({ ...good, caFile: 3 }), 'caFile: a file name is required'],
    ['certFile', JSON.stringify({ ...good, certFile: '' }), undefined],
    ['keyFile', JSON.stringify(noKey), 'keyFile: is required'],
  ] as const) {
    const err = failure(text, path);
    t.match(err, { code: 'CONFIG_INVALID', details: { path, field } }, field);
    t.match((err as Error).message, path, `${field}: the message names the file`);
    if (words !== undefined) t.match((err as Error).message, words);
  }
});

t.test('loadAdminConfig reports a bad file by its path and field', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'amalgam-cli-config-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, 'admin.json');
  await writeFile(path, JSON.stringify({ ...good, server: 6443 }));
  await t.rejects(loadAdminConfig({ path, source: '--config' }), {
    code: 'CONFIG_INVALID',
    details: { path, field: 'server' },
  });
});
