/**
 * The etcd side of `clusteradm join --control-plane`: `member add` through
 * etcd's own v3 JSON gateway (etcd is the store, not the public API, so this
 * does not go through services/client), the environment file etcd starts
 * from, and starting the member and waiting until it is healthy.
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join as joinPath } from 'node:path';
import { urlHost } from './cluster-home.ts';
import { CliError } from './errors.ts';

export const ETCD_CLIENT_PORT = 2379;
export const ETCD_PEER_PORT = 2380;

interface EtcdMember {
  ID: string;
  name?: string;
  peerURLs?: string[];
  clientURLs?: string[];
}

async function etcdCall(
  endpoint: string,
  path: string,
  body: unknown,
): Promise<{ status: number; json: Record<string, unknown> }> {
  const r = await fetch(`${endpoint.replace(/\/$/, '')}${path}`, {
    method: 'POST',
    body: JSON.stringify(body),
    headers: { 'content-type': 'application/json' },
    signal: AbortSignal.timeout(10_000),
  });
  return { status: r.status, json: (await r.json()) as Record<string, unknown> };
}

/**
 * `member add` for `peerUrl` on the first endpoint that takes it; a member that already has this
 * peer URL (a re-run) is reused. Returns every member afterwards.
 */
export async function addEtcdMember(
  endpoints: string[],
  peerUrl: string,
  timeoutMs: number,
): Promise<EtcdMember[]> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    for (const endpoint of endpoints) {
      try {
        const list = await etcdCall(endpoint, '/v3/cluster/member/list', {});
        const members = (list.json.members ?? []) as EtcdMember[];
        if (members.some((m) => m.peerURLs?.includes(peerUrl))) return members;
        const added = await etcdCall(endpoint, '/v3/cluster/member/add', { peerURLs: [peerUrl] });
        if (added.status === 200) return (added.json.members ?? []) as EtcdMember[];
        // "unhealthy cluster": the last member added has not been up long enough yet.
        last = `${endpoint}: ${String(added.json.message ?? added.status)}`;
      } catch (err) {
        last = `${endpoint}: ${(err as Error).message}`;
      }
    }
    if (Date.now() > deadline) {
      throw new CliError('ETCD_MEMBER_ADD_FAILED', `member add ${peerUrl}: ${last}`, { peerUrl });
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** `name=peerURL,...` for `--initial-cluster`: this member under `name`, the others by theirs. */
export function initialCluster(members: EtcdMember[], name: string, peerUrl: string): string {
  return members
    .flatMap((m) => {
      const url = m.peerURLs?.[0];
      if (!url) return [];
      if (url === peerUrl) return [`${name}=${url}`];
      return m.name ? [`${m.name}=${url}`] : [];
    })
    .join(',');
}

/** The environment file etcd reads its flags from (systemd `EnvironmentFile=`). */
export function etcdEnvironment(
  name: string,
  address: string,
  dataDir: string,
  cluster: string,
): Record<string, string> {
  const host = urlHost(address);
  return {
    ETCD_NAME: name,
    ETCD_DATA_DIR: dataDir,
    ETCD_LISTEN_CLIENT_URLS: `http://${host}:${ETCD_CLIENT_PORT},http://127.0.0.1:${ETCD_CLIENT_PORT}`,
    ETCD_ADVERTISE_CLIENT_URLS: `http://${host}:${ETCD_CLIENT_PORT}`,
    ETCD_LISTEN_PEER_URLS: `http://${host}:${ETCD_PEER_PORT}`,
    ETCD_INITIAL_ADVERTISE_PEER_URLS: `http://${host}:${ETCD_PEER_PORT}`,
    ETCD_INITIAL_CLUSTER: cluster,
    ETCD_INITIAL_CLUSTER_STATE: 'existing',
  };
}

export function parseEnvironmentFile(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^\s*([A-Z_][A-Z0-9_]*)=(.*)$/.exec(line);
    if (m) env[m[1] as string] = (m[2] as string).trim();
  }
  return env;
}

async function etcdHealthy(url: string): Promise<boolean> {
  try {
    const r = await fetch(`${url}/health`, { signal: AbortSignal.timeout(2_000) });
    return ((await r.json()) as { health?: string }).health === 'true';
  } catch {
    return false;
  }
}

/** Starts etcd detached from `envFile`'s variables, logging to `<home>/etcd.log`; its pid. */
export async function spawnEtcd(home: string, envFile: string): Promise<number | undefined> {
  const log = openSync(joinPath(home, 'etcd.log'), 'a', 0o600);
  try {
    const child = spawn('etcd', [], {
      detached: true,
      stdio: ['ignore', log, log],
      env: { ...process.env, ...parseEnvironmentFile(await readFile(envFile, 'utf8')) },
    });
    child.on('error', () => {});
    child.unref();
    return child.pid;
  } finally {
    closeSync(log);
  }
}

/** Waits until etcd at `host` says it is healthy. */
export async function waitForEtcd(
  host: string,
  name: string,
  home: string,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await etcdHealthy(`http://${host}:${ETCD_CLIENT_PORT}`))) {
    if (Date.now() > deadline) {
      throw new CliError(
        'ETCD_MEMBER_ADD_FAILED',
        `etcd ${name} is not healthy; see ${home}/etcd.log`,
      );
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}
