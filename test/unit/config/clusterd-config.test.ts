/**
 * clusterd's config is checked by its JSON Schema (config-schema.ts): the
 * `processes` block's bounds, and the file named in the error by loadConfig.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { loadConfig, parseConfig } from '../../../services/controlplane/config.ts';

const valid = {
  clusterName: 'lab',
  listen: { host: '127.0.0.1', port: 6443 },
  tls: { certFile: 'a.crt', keyFile: 'a.key', caFile: 'ca.crt', caKeyFile: 'ca.key' },
  store: { backend: 'embedded', dataDir: 'data' },
};

t.test('the processes block: seconds become the policy in milliseconds', async (t) => {
  const config = parseConfig({
    ...valid,
    processes: { rebalance: false, cooldownSeconds: 3, threshold: 0.25, fenceMarginSeconds: 1 },
  });
  t.same(config.processes, {
    rebalance: false,
    fenceMarginSeconds: 1,
    policy: { cooldownMs: 3000, threshold: 0.25 },
  });
  t.notOk('processes' in parseConfig(valid), 'absent stays absent');
});

t.test('bad processes fields are named', async (t) => {
  for (const [field, processes] of [
    ['processes', 'on'],
    ['processes.rebalance', { rebalance: 'yes' }],
    ['processes.rebalanceIntervalMs', { rebalanceIntervalMs: 10 }],
    ['processes.maxMovesPerRound', { maxMovesPerRound: 0 }],
    ['processes.unknown', { unknown: 1 }],
  ] as const) {
    t.throws(() => parseConfig({ ...valid, processes }), {
      code: 'INVALID_ARGUMENT',
      details: { field },
    });
  }
});

t.test('loadConfig names the field, and the file in its details', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'amalgam-config-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'clusterd.json');
  await writeFile(file, JSON.stringify({ ...valid, listen: { host: 'h', port: 70000 } }));
  const err = await loadConfig(file).catch((e) => e);
  t.match(err, { code: 'INVALID_ARGUMENT', details: { field: 'listen.port', file } });
  t.match(err.message, 'listen.port: an integer from 0 to 65535');
});

t.test('the first complaint is the first bad field in documented order', async (t) => {
  // tls and store are missing too, but listen comes first in the file's documentation.
  t.throws(() => parseConfig({ clusterName: 'x', listen: { host: 'h', port: -1 } }), {
    code: 'INVALID_ARGUMENT',
    message: 'listen.port: an integer from 0 to 65535 is required',
    details: { field: 'listen.port' },
  });
});
