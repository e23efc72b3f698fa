/**
 * The deploy files are checked by the tools that consume them: the systemd units by
 * `systemd-analyze verify` (against a scratch root holding the binaries they name), the alert
 * rules by `promtool check rules` and `promtool test rules`, the scrape configuration by
 * `promtool check config`, the dashboard as JSON whose panels all have queries.
 */
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  cpSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { etcdPaths } from '../../services/cli/etcd-files.ts';
import { etcdEnvironment, parseEnvironmentFile } from '../../services/cli/etcd-member.ts';
import { createClusterCa } from '../../services/pki/index.ts';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const SYSTEMD = join(REPO, 'deploy/systemd');
const PROMETHEUS = join(REPO, 'deploy/prometheus');
const UNITS = ['amalgam-etcd.service', 'clusterd.service', 'clusteragent.service'];

function tool(cmd: string, args: string[]): { status: number | null; output: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.error) throw r.error;
  return { status: r.status, output: `${r.stdout}${r.stderr}`.trim() };
}

t.test('systemd units pass systemd-analyze verify with no warning', (t) => {
  const root = mkdtempSync(join(tmpdir(), `amalgam-systemd-${process.pid}-`));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  // The scratch root: the system's own units (targets the units order against) and the
  // binaries the units start, where a Debian etcd and `npm install -g amalgam` put them.
  mkdirSync(join(root, 'usr/lib/systemd'), { recursive: true });
  cpSync('/usr/lib/systemd/system', join(root, 'usr/lib/systemd/system'), { recursive: true });
  mkdirSync(join(root, 'usr/bin'), { recursive: true });
  mkdirSync(join(root, 'usr/local/bin'), { recursive: true });
  mkdirSync(join(root, 'etc/systemd/system'), { recursive: true });
  copyFileSync('/usr/bin/etcd', join(root, 'usr/bin/etcd'));
  for (const bin of ['clusterd', 'clusteragent']) {
    copyFileSync(join(REPO, 'bin', `${bin}.mjs`), join(root, 'usr/local/bin', bin));
    chmodSync(join(root, 'usr/local/bin', bin), 0o755);
  }
  for (const unit of UNITS)
    copyFileSync(join(SYSTEMD, unit), join(root, 'etc/systemd/system', unit));
  for (const unit of UNITS) {
    const r = tool('systemd-analyze', ['verify', `--root=${root}`, '--man=no', unit]);
    t.equal(r.status, 0, `${unit}: exit 0`);
    t.equal(r.output, '', `${unit}: no warning`);
  }
  // The check can fail: a unit naming a binary that is not there, or a misspelt key.
  writeFileSync(
    join(root, 'etc/systemd/system/broken.service'),
    '[Unit]\nDescription=broken\n[Service]\nExecStrat=/usr/local/bin/clusterd\nExecStart=/usr/local/bin/nothing-here\n',
  );
  const broken = tool('systemd-analyze', [
    'verify',
    `--root=${root}`,
    '--man=no',
    'broken.service',
  ]);
  t.not(broken.output, '', `a broken unit is reported: ${broken.output.split('\n')[0]}`);
  t.end();
});

t.test('etcd.env.example is what clusteradm writes: https only, certificates required', (t) => {
  const example = parseEnvironmentFile(readFileSync(join(SYSTEMD, 'etcd.env.example'), 'utf8'));
  const written = etcdEnvironment(
    {
      name: 'c1',
      address: '10.0.0.11',
      dataDir: '/var/lib/amalgam-etcd',
      cluster: 'c0=https://10.0.0.10:2380,c1=https://10.0.0.11:2380',
      state: 'existing',
    },
    etcdPaths('/etc/amalgam'),
  );
  t.same(example, written, 'every variable, as `join --control-plane` writes it');
  for (const key of [
    'ETCD_LISTEN_CLIENT_URLS',
    'ETCD_ADVERTISE_CLIENT_URLS',
    'ETCD_LISTEN_PEER_URLS',
    'ETCD_INITIAL_ADVERTISE_PEER_URLS',
    'ETCD_INITIAL_CLUSTER',
  ]) {
    t.ok(
      (example[key] ?? '').split(',').every((u) => /(^|=)https:\/\//.test(u)),
      `${key}: https only`,
    );
  }
  t.equal(example.ETCD_CLIENT_CERT_AUTH, 'true', 'clients need a certificate');
  t.equal(example.ETCD_PEER_CLIENT_CERT_AUTH, 'true', 'peers need a certificate');
  t.equal(example.ETCD_TRUSTED_CA_FILE, '/etc/amalgam/pki/etcd/ca.crt', 'of the etcd CA');
  const clusterd = readFileSync(join(SYSTEMD, 'clusterd.service'), 'utf8');
  t.match(clusterd, /^RestartPreventExitStatus=2$/m, 'a bad config (exit 2) is not restarted');
  const prometheus = readFileSync(join(PROMETHEUS, 'prometheus.yml'), 'utf8');
  t.match(prometheus, /targets\/etcd\.json +\[\{"targets": \["10\.0\.0\.10:2381"/);
  t.end();
});

t.test('alert rules load and fire on the series they are for', (t) => {
  const check = tool('promtool', ['check', 'rules', join(PROMETHEUS, 'amalgam.rules.yml')]);
  t.equal(check.status, 0, check.output);
  t.match(check.output, /SUCCESS: \d+ rules found/);
  const rules = readFileSync(join(PROMETHEUS, 'amalgam.rules.yml'), 'utf8');
  for (const alert of [
    'AmalgamNoControllerLeader',
    'AmalgamNodeNotReady',
    'AmalgamAddressSpaceNearlyFull',
    'AmalgamPageServerErrors',
  ]) {
    t.match(rules, `alert: ${alert}`, `${alert} is defined`);
  }
  const unit = tool('promtool', ['test', 'rules', join(PROMETHEUS, 'amalgam.rules.test.yml')]);
  t.equal(unit.status, 0, unit.output);
  t.end();
});

t.test('the scrape configuration is valid', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), `amalgam-prom-${process.pid}-`));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  for (const f of ['prometheus.yml', 'amalgam.rules.yml'])
    copyFileSync(join(PROMETHEUS, f), join(dir, f));
  mkdirSync(join(dir, 'targets'));
  for (const job of ['clusterd', 'clusteragent', 'etcd']) {
    writeFileSync(join(dir, 'targets', `${job}.json`), '[{"targets": ["127.0.0.1:1"]}]\n');
  }
  writeFileSync(join(dir, 'ca.crt'), (await createClusterCa()).certPem);
  const r = tool('promtool', ['check', 'config', join(dir, 'prometheus.yml')]);
  t.equal(r.status, 0, r.output);
});

t.test('the dashboard is JSON and every panel queries something', (t) => {
  const dashboard = JSON.parse(readFileSync(join(PROMETHEUS, 'dashboard.json'), 'utf8')) as {
    panels: { title: string; targets: { expr: string }[] }[];
  };
  t.ok(dashboard.panels.length >= 8, `${dashboard.panels.length} panels`);
  for (const p of dashboard.panels) {
    t.ok(
      p.targets.length > 0 && p.targets.every((q) => q.expr.length > 0),
      `${p.title} has queries`,
    );
  }
  t.end();
});
