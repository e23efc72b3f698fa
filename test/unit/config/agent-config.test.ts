/**
 * clusteragent's config (agent.json) is checked by its JSON Schema
 * (services/agent/config-schema.ts): errors name the field and the file;
 * relative paths are relative to the file; unknown fields pass, as they
 * always have.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { loadAgentConfig, parseAgentConfig } from '../../../services/agent/config.ts';

const valid = {
  server: ['https://127.0.0.1:6443'],
  name: 'n1',
  certFile: 'node.crt',
  keyFile: 'node.key',
  caFile: 'ca.crt',
};

async function tempDir(t: { teardown(fn: () => unknown): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'amalgam-agent-config-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

t.test('a valid file: paths relative to it, one server is a list, processes on', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'agent.json');
  await writeFile(
    file,
    JSON.stringify({
      ...valid,
      server: 'https://a:1',
      keyFile: '/abs/node.key',
      stateDir: 'state',
      devices: { block: false, declared: [{ name: 'disk0', path: 'img/d0' }] },
      remotedev: { mount: 'remotedev', binary: '/bin/fuse' },
      comment: 'unknown fields pass',
    }),
  );
  const config = await loadAgentConfig(file);
  t.same(config.server, ['https://a:1']);
  t.equal(config.certFile, join(dir, 'node.crt'));
  t.equal(config.keyFile, '/abs/node.key');
  t.equal(config.stateDir, join(dir, 'state'));
  t.same(config.devices?.declared, [{ name: 'disk0', path: join(dir, 'img/d0') }]);
  t.same(config.remotedev, { mount: join(dir, 'remotedev'), binary: '/bin/fuse' });
  t.same(config.processes, { dataDir: join(dir, 'processes') });
  t.equal((config as unknown as Record<string, unknown>).comment, 'unknown fields pass');
});

t.test('processes: an object (dataDir resolved), or false for none', async (t) => {
  t.notOk('processes' in parseAgentConfig({ ...valid, processes: false }, '/h'));
  t.same(parseAgentConfig({ ...valid, processes: { slots: 2, dataDir: 'p' } }, '/h').processes, {
    slots: 2,
    dataDir: '/h/p',
  });
});

t.test('bad fields are named', async (t) => {
  const { name: _name, ...noName } = valid;
  for (const [field, value] of [
    ['config', []],
    ['server', { ...valid, server: [] }],
    ['server', { ...valid, server: 'http://a:1' }],
    ['server[1]', { ...valid, server: ['https://a:1', 7] }],
    ['name', noName],
    ['certFile', { ...valid, certFile: '' }],
    ['heartbeatSeconds', { ...valid, heartbeatSeconds: 'fast' }],
    ['heartbeatSeconds', { ...valid, heartbeatSeconds: 0 }],
    ['metricsPort', { ...valid, metricsPort: 70000 }],
    ['pageserver.plaintextLoopback', { ...valid, pageserver: { plaintextLoopback: 'yes' } }],
    ['processes', { ...valid, processes: true }],
    ['processes.leaseSeconds', { ...valid, processes: { leaseSeconds: -1 } }],
    ['devices.char[0]', { ...valid, devices: { char: ['tty'] } }],
    ['devices.declared[0].name', { ...valid, devices: { declared: [{ name: 'D', path: '/x' }] } }],
    ['remotedev.localdev', { ...valid, remotedev: { localdev: '' } }],
  ] as const) {
    t.throws(
      () => parseAgentConfig(value, '/h'),
      { name: 'AgentConfigError', details: { field } },
      field,
    );
  }
});

t.test('loadAgentConfig names the file and the field', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'agent.json');
  const cases = [
    ['heartbeatSeconds', { ...valid, heartbeatSeconds: 'fast' }, 'a number > 0'],
    ['caFile', { ...valid, caFile: undefined }, 'is required'],
    [
      'devices.declared[1].name',
      {
        ...valid,
        devices: {
          declared: [
            { name: 'd', path: '/x' },
            { name: 'd', path: '/y' },
          ],
        },
      },
      'listed twice',
    ],
  ] as const;
  for (const [field, value, words] of cases) {
    await writeFile(file, JSON.stringify(value));
    const err = await loadAgentConfig(file).catch((e) => e);
    t.match(err, { name: 'AgentConfigError', details: { field, file } }, field);
    t.equal(err.message, `agent config ${file}: ${field}: ${words}`);
  }
  await writeFile(file, '{ not json');
  await t.rejects(loadAgentConfig(file), {
    name: 'AgentConfigError',
    details: { field: 'config', file },
  });
  const missing = join(dir, 'missing.json');
  await t.rejects(loadAgentConfig(missing), {
    name: 'AgentConfigError',
    details: { field: 'config', file: missing },
  });
});
