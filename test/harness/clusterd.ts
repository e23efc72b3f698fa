/**
 * Real clusterd replicas for integration tests and benchmarks: a fresh
 * cluster CA, a server certificate for 127.0.0.1, the admin credential, and
 * N clusterd processes (the TypeScript sources, through scripts/ts-loader.mjs)
 * on free loopback ports, all on one store. Killed with the test, always.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { openSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  type ClusterCa,
  createClusterCa,
  createKeyAndCsr,
  issueAdminCredential,
  signCsr,
} from '../../services/pki/index.ts';
import type { EtcdTlsFiles } from '../../services/store/etcd-tls.ts';
import { tailFile } from './etcd-cluster.ts';
import { patient } from './patience.ts';
import {
  findSetpriv,
  freePorts,
  installHandlers,
  isAlive,
  ownedGroups,
  type Tracked,
  uninstallHandlers,
} from './processes.ts';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const SERVER = join(REPO, 'services/controlplane/server.ts');
const LOADER = join(REPO, 'scripts/ts-loader.mjs');

export type StoreConfig =
  | { backend: 'embedded' }
  | { backend: 'etcd'; endpoints: string[]; tls?: EtcdTlsFiles };

export interface Credential {
  ca: string;
  cert: string;
  key: string;
}

export interface ClusterdReplicas {
  urls: string[];
  /** `127.0.0.1:port` of each replica's gRPC listener; empty unless started with `grpc: true`. */
  grpcUrls: string[];
  grpcPorts: number[];
  ca: ClusterCa;
  admin: Credential;
  /** The server certificate the replicas use (a peer server in a benchmark can use it too). */
  tlsFiles: { certFile: string; keyFile: string; caFile: string };
  kill(i: number, signal?: NodeJS.Signals): Promise<void>;
  restart(i: number): Promise<void>;
  logTail(i: number): string;
  destroy(): Promise<void>;
}

export interface StartClusterdOptions {
  count?: number;
  store: StoreConfig;
  clusterName?: string;
  /** Extra fields merged into each replica's config (e.g. nodeGraceSeconds). */
  extraConfig?: Record<string, unknown>;
  startTimeoutMs?: number;
  /** Extra node flags for the replicas (e.g. --cpu-prof when profiling a benchmark). */
  nodeArgs?: string[];
  /** Also serve gRPC (`grpcListen`) on a free port per replica, kept across restarts. */
  grpc?: boolean;
}

export async function startClusterdReplicas(
  options: StartClusterdOptions,
): Promise<ClusterdReplicas> {
  const count = options.count ?? 1;
  if (options.store.backend === 'embedded' && count !== 1) {
    throw new Error('the embedded store serves one clusterd; use etcd for several replicas');
  }
  const root = await mkdtemp(join(tmpdir(), `amalgam-clusterd-${process.pid}-`));
  const tracked: Tracked = { root, children: new Set() };
  ownedGroups.add(tracked);
  installHandlers();

  const ca = await createClusterCa({ commonName: 'amalgam-test-ca' });
  const server = await createKeyAndCsr({ commonName: 'clusterd', ipAddresses: ['127.0.0.1'] });
  const serverCert = await signCsr(ca, server.csrPem, {
    commonName: 'clusterd',
    organization: 'amalgam:control-plane',
    dnsNames: ['localhost'],
    ipAddresses: ['127.0.0.1'],
    usages: ['server', 'client'],
    validityDays: 30,
  });
  const admin = await issueAdminCredential(ca);
  const file = (name: string) => join(root, name);
  await Promise.all([
    writeFile(file('ca.crt'), ca.certPem),
    writeFile(file('ca.key'), ca.keyPem, { mode: 0o600 }),
    writeFile(file('clusterd.crt'), serverCert),
    writeFile(file('clusterd.key'), server.keyPem, { mode: 0o600 }),
  ]);

  const allPorts = await freePorts(options.grpc ? 2 * count : count);
  const ports = allPorts.slice(0, count);
  const grpcPorts = options.grpc ? allPorts.slice(count) : [];
  const urls = ports.map((port) => `https://127.0.0.1:${port}`);
  const grpcUrls = grpcPorts.map((port) => `127.0.0.1:${port}`);
  const children: (ChildProcess | undefined)[] = [];
  const startTimeoutMs = patient(options.startTimeoutMs ?? 30_000);

  async function writeConfig(i: number): Promise<string> {
    const store =
      options.store.backend === 'embedded'
        ? { backend: 'embedded', dataDir: file('data') }
        : options.store;
    const config = {
      clusterName: options.clusterName ?? 'test',
      listen: { host: '127.0.0.1', port: ports[i] },
      tls: {
        certFile: file('clusterd.crt'),
        keyFile: file('clusterd.key'),
        caFile: file('ca.crt'),
        caKeyFile: file('ca.key'),
      },
      store,
      logLevel: 'info',
      // Every agent of a test cluster runs on this machine: loopback page servers are fine.
      singleMachine: true,
      ...(options.grpc ? { grpcListen: { host: '127.0.0.1', port: grpcPorts[i] } } : {}),
      ...options.extraConfig,
    };
    const path = file(`clusterd-${i}.json`);
    await writeFile(path, JSON.stringify(config, null, 2));
    return path;
  }

  async function start(i: number): Promise<void> {
    const config = await writeConfig(i);
    const log = openSync(file(`clusterd-${i}.log`), 'a');
    const args = [...(options.nodeArgs ?? []), '--import', LOADER, SERVER, '--config', config];
    const setpriv = findSetpriv();
    const env = { ...process.env };
    delete env.NODE_OPTIONS; // tap's coverage hooks must not follow us into clusterd
    const child = setpriv
      ? spawn(setpriv, ['--pdeathsig', 'KILL', '--', process.execPath, ...args], {
          stdio: ['ignore', log, log],
          env,
        })
      : spawn(process.execPath, args, { stdio: ['ignore', log, log], env });
    children[i] = child;
    tracked.children.add(child);
    child.once('exit', () => tracked.children.delete(child));
    const deadline = Date.now() + startTimeoutMs;
    for (;;) {
      if (!isAlive(child)) {
        throw new Error(
          `clusterd ${i} exited while starting:\n${tailFile(file(`clusterd-${i}.log`))}`,
        );
      }
      // gRPC binds after REST answers: wait for both.
      if (
        (await readyz(urls[i] as string, ca.certPem)) === 200 &&
        (grpcPorts[i] === undefined || (await accepts(grpcPorts[i])))
      ) {
        return;
      }
      if (Date.now() > deadline) {
        throw new Error(
          `clusterd ${i} not ready after ${startTimeoutMs} ms:\n${tailFile(file(`clusterd-${i}.log`))}`,
        );
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  async function kill(i: number, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = children[i];
    if (!child || !isAlive(child)) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill(signal);
    await exited;
  }

  let destroyed = false;
  const replicas: ClusterdReplicas = {
    urls,
    grpcUrls,
    grpcPorts,
    ca,
    admin: { ca: ca.certPem, cert: admin.certPem, key: admin.keyPem },
    tlsFiles: {
      certFile: file('clusterd.crt'),
      keyFile: file('clusterd.key'),
      caFile: file('ca.crt'),
    },
    kill,
    restart: start,
    logTail: (i) => tailFile(file(`clusterd-${i}.log`)),
    async destroy() {
      if (destroyed) return;
      destroyed = true;
      await Promise.all(children.map((_, i) => kill(i)));
      ownedGroups.delete(tracked);
      if (ownedGroups.size === 0) uninstallHandlers();
      await rm(root, { recursive: true, force: true });
    },
  };
  try {
    // Replicas start one after another: the first records the cluster in the store.
    for (let i = 0; i < count; i++) await start(i);
  } catch (err) {
    await replicas.destroy();
    throw err;
  }
  return replicas;
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port }, () => {
      socket.destroy();
      resolve(true);
    });
    socket.on('error', () => resolve(false));
  });
}

function readyz(url: string, ca: string): Promise<number> {
  return new Promise((resolve) => {
    const req = request(`${url}/readyz`, { ca, timeout: 2000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', () => resolve(0));
    req.on('timeout', () => {
      req.destroy();
      resolve(0);
    });
    req.end();
  });
}
