#!/usr/bin/env node
/**
 * npm start: a one-machine cluster on the embedded store, in the foreground.
 *
 * The first run creates a cluster home in .amalgam-local/ (CA, admin
 * credential, clusterd config) with `clusteradm init`; every run starts
 * clusterd, joins this machine as a node with `clusteradm token create` and
 * `clusteradm join --foreground`, exactly as a user would on a real machine;
 * join runs clusteragent (heartbeats, the page server on the node's range).
 * Ctrl-C stops both; the state survives in .amalgam-local/ for the next start.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = fileURLToPath(new URL('..', import.meta.url));
const home = process.env.AMALGAM_HOME ?? join(repo, '.amalgam-local');
const nodeHome = join(home, 'node');
const clusteradm = join(repo, 'bin/clusteradm.mjs');
const say = (line) => process.stderr.write(`amalgam: ${line}\n`);

function adm(args, { capture = false } = {}) {
  const res = spawnSync(process.execPath, [clusteradm, ...args], {
    stdio: capture ? ['ignore', 'pipe', 'inherit'] : 'inherit',
    encoding: 'utf8',
  });
  if (res.status !== 0) {
    say(`clusteradm ${args[0]} ${args[1] ?? ''} failed (exit ${res.status})`);
    process.exit(1);
  }
  return res.stdout;
}

if (!existsSync(join(home, 'clusterd.json'))) {
  say(`creating a one-machine cluster in ${home}`);
  adm(['init', '--home', home, '--name', 'local', '--no-start']);
}

const config = join(home, 'clusterd.json');
// One machine: its page server listens on loopback, which clusterd refuses in
// heartbeats unless the config says every node is this machine.
const settings = JSON.parse(readFileSync(config, 'utf8'));
if (settings.singleMachine !== true) {
  writeFileSync(config, `${JSON.stringify({ ...settings, singleMachine: true }, null, 2)}\n`);
}
say('starting clusterd (Ctrl-C stops it)');
const clusterd = spawn(process.execPath, [join(repo, 'bin/clusterd.mjs'), '--config', config], {
  stdio: ['ignore', 'inherit', 'inherit'],
});
let agent;
const stop = () => {
  agent?.kill('SIGTERM');
  clusterd.kill('SIGTERM');
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
clusterd.on('exit', (code, signal) => {
  say(`clusterd stopped (${signal ?? `exit ${code}`})`);
  process.exit(code ?? 0);
});

const { listen } = JSON.parse(readFileSync(config, 'utf8'));
const url = `https://${listen.host}:${listen.port}`;
for (let i = 0; ; i++) {
  const res = spawnSync(process.execPath, [clusteradm, 'nodes', '--home', home, '-o', 'json'], {
    stdio: 'ignore',
  });
  if (res.status === 0) break;
  if (i > 60 || clusterd.exitCode !== null) {
    say('clusterd did not become ready');
    stop();
    process.exit(1);
  }
  await new Promise((r) => setTimeout(r, 500));
}

const name =
  (process.env.AMALGAM_NODE_NAME ?? hostname())
    .toLowerCase()
    .replace(/[^a-z0-9-]/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 63) || 'local';
const joinLine = adm(['token', 'create', '--home', home, '--ttl', '10m', '--print-join-command'], {
  capture: true,
}).trim();
const joinArgs = joinLine.split(/\s+/).slice(2); // drop "clusteradm join"
say(
  "joining this machine; clusteradm join runs clusteragent (heartbeats, the page server on this node's range)",
);
agent = spawn(
  process.execPath,
  [
    clusteradm,
    'join',
    ...joinArgs,
    '--name',
    name,
    '--home',
    nodeHome,
    '--metrics-port',
    '9464',
    '--foreground',
  ],
  { stdio: ['ignore', 'inherit', 'inherit'] },
);
agent.on('exit', (code, signal) => say(`clusteragent stopped (${signal ?? `exit ${code}`})`));
for (let i = 0; ; i++) {
  const res = spawnSync(process.execPath, [clusteradm, 'nodes', '--home', home, '-o', 'json'], {
    encoding: 'utf8',
  });
  const node = res.status === 0 ? JSON.parse(res.stdout).items.find((n) => n.name === name) : null;
  if (node?.state === 'Ready' && node.pageserver) break;
  if (i > 120 || agent.exitCode !== null) {
    say('the node did not turn Ready');
    stop();
    process.exit(1);
  }
  await new Promise((r) => setTimeout(r, 500));
}
adm(['nodes', '--home', home]);
say(`cluster "local" is up at ${url}; this machine is node "${name}".`);
say('agent metrics (page server counters): http://127.0.0.1:9464/metrics');
say(
  `try: AMALGAM_HOME=${home} node bin/clusteradm.mjs mem layout   (or: mem alloc 64Mi, nodes, node describe ${name})`,
);
