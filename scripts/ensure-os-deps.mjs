#!/usr/bin/env node
/**
 * Makes sure the operating-system packages the test suites need are present.
 * As root it installs the missing ones with apt-get; otherwise it stops with
 * one clear message naming what to install. Used by `npm test` and `.ci/run`.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** Debian package -> how we know it is installed. */
const REQUIRED = [
  {
    pkg: 'etcd-server',
    present: () => onPath('etcd'),
    why: 'real etcd members for the etcd backend suites',
  },
  {
    pkg: 'libssl-dev',
    present: () => existsSync('/usr/include/openssl/ssl.h'),
    why: 'OpenSSL headers, so native/ builds the page server with mutual TLS',
  },
  {
    pkg: 'clang',
    present: () => onPath('clang'),
    why: 'libFuzzer (-fsanitize=fuzzer) for the request-parser fuzz test in test/fuzz',
  },
  {
    pkg: 'fuse3',
    present: () => onPath('fusermount3'),
    why: 'fusermount3, to mount and unmount the remotedev FUSE file system in the remotedev tests',
  },
  {
    pkg: 'pkgconf',
    present: () => onPath('pkg-config'),
    why: 'pkg-config, which native/Makefile asks whether libfuse3 is there',
  },
  {
    pkg: 'libfuse3-dev',
    present: () => spawnSync('pkg-config', ['--exists', 'fuse3'], { stdio: 'ignore' }).status === 0,
    why: 'libfuse3 headers, so native/ builds remotedev-fuse (the /remotedev mount)',
  },
  {
    pkg: 'prometheus',
    present: () => onPath('prometheus') && onPath('promtool'),
    why: 'a real Prometheus scraping the local cluster, and promtool checking the alert rules (test/e2e)',
  },
  {
    pkg: 'iproute2',
    present: () => onPath('ip') && onPath('tc'),
    why: 'network namespaces and veth pairs for deploy/local (test/e2e, test/chaos)',
  },
  {
    pkg: 'iptables',
    present: () => onPath('iptables'),
    why: 'partitions and packet loss between deploy/local machines (test/e2e, test/chaos)',
  },
  {
    pkg: 'systemd',
    present: () => onPath('systemd-analyze'),
    why: 'systemd-analyze verify of the unit files in deploy/systemd (test/e2e)',
  },
];

function onPath(cmd) {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 20 || (major === 20 && minor < 15)) {
  console.error(`amalgam needs Node.js >= 20.15 (found ${process.versions.node}).`);
  process.exit(1);
}

const missing = REQUIRED.filter((r) => !r.present());
if (missing.length === 0) process.exit(0);

const names = missing.map((m) => m.pkg);
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
if (!isRoot || !existsSync('/usr/bin/apt-get')) {
  console.error(
    `amalgam's tests need these packages: ${names.join(' ')}\n` +
      missing.map((m) => `  ${m.pkg}: ${m.why}`).join('\n') +
      `\nInstall them with: sudo apt-get install -y ${names.join(' ')}`,
  );
  process.exit(1);
}
console.error(`installing ${names.join(' ')} with apt-get ...`);
const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
execFileSync('apt-get', ['install', '-y', '-qq', ...names], { stdio: 'inherit', env });
// The page server was built without TLS, or remotedev-fuse skipped, while headers were missing: rebuild.
if (['libssl-dev', 'libfuse3-dev', 'pkgconf'].some((p) => names.includes(p)))
  execFileSync('make', ['-C', fileURLToPath(new URL('../native', import.meta.url))], {
    stdio: 'inherit',
  });
