/**
 * The etcd side of `clusteradm init --store etcd` and `join --control-plane`:
 * `member add` through etcd's own v3 JSON gateway (etcd is the store, not the
 * public API, so this does not go through services/client), the environment
 * file etcd starts from, and starting the member and waiting until it is
 * healthy. etcd speaks https only and asks every client and peer for a
 * certificate of the etcd CA (etcd-files.ts): clusteradm presents clusterd's.
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { request } from 'node:https';
import { isIP } from 'node:net';
import { join as joinPath } from 'node:path';
import { CliError } from './errors.ts';
import type { EtcdClientPem, EtcdPaths } from './etcd-files.ts';
import { PUBLIC, writeFileAtomic } from './files.ts';

export const ETCD_CLIENT_PORT = 2379;
export const ETCD_PEER_PORT = 2380;
/** Plain http, /metrics and /health only (no keys): what Prometheus scrapes. */
export const ETCD_METRICS_PORT = 2381;

/** An address as a URL's host (IPv6 in brackets); cluster-home.ts's urlHost, without the cycle. */
function urlHost(address: string): string {
  return isIP(address) === 6 ? `[${address}]` : address;
}

interface EtcdMember {
  ID: string;
  name?: string;
  peerURLs?: string[];
  clientURLs?: string[];
}

/** One call to etcd's JSON gateway over https, presenting the client certificate. */
export function etcdCall(
  endpoint: string,
  path: string,
  body: unknown,
  pem: EtcdClientPem,
  timeoutMs = 10_000,
): Promise<{ status: number; json: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request(
      `${endpoint.replace(/\/$/, '')}${path}`,
      {
        method: body === undefined ? 'GET' : 'POST',
        headers: { 'content-type': 'application/json' },
        agent: false,
        ca: pem.ca,
        cert: pem.cert,
        key: pem.key,
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          text += c;
        });
        res.on('end', () => {
          try {
            resolve({ status: res.statusCode ?? 0, json: JSON.parse(text) });
          } catch (err) {
            reject(err);
          }
        });
        res.on('error', reject);
      },
    );
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`timeout after ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

/**
 * `member add` for `peerUrl` on the first endpoint that takes it; a member that already has this
 * peer URL (a re-run) is reused. Returns every member afterwards.
 */
export async function addEtcdMember(
  endpoints: string[],
  peerUrl: string,
  timeoutMs: number,
  pem: EtcdClientPem,
): Promise<EtcdMember[]> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    for (const endpoint of endpoints) {
      try {
        const list = await etcdCall(endpoint, '/v3/cluster/member/list', {}, pem);
        const members = (list.json.members ?? []) as EtcdMember[];
        if (members.some((m) => m.peerURLs?.includes(peerUrl))) return members;
        const added = await etcdCall(
          endpoint,
          '/v3/cluster/member/add',
          { peerURLs: [peerUrl] },
          pem,
        );
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

/** This member's client and peer URLs (https only). */
export function etcdUrls(address: string): { client: string; peer: string; metrics: string } {
  const host = urlHost(address);
  return {
    client: `https://${host}:${ETCD_CLIENT_PORT}`,
    peer: `https://${host}:${ETCD_PEER_PORT}`,
    metrics: `http://${host}:${ETCD_METRICS_PORT}`,
  };
}

export interface EtcdMemberSpec {
  name: string;
  address: string;
  dataDir: string;
  /** `--initial-cluster`: `name=peerURL,...`. */
  cluster: string;
  /** `new` for the first member (`clusteradm init`), `existing` after `member add`. */
  state: 'new' | 'existing';
  /** `--initial-cluster-token`, for a new cluster. */
  token?: string;
}

/**
 * The environment file etcd reads its flags from (systemd `EnvironmentFile=`): clients and peers
 * on https only, each asked for a certificate of the etcd CA (`--client-cert-auth`,
 * `--peer-client-cert-auth`); /metrics and /health alone on plain http.
 */
export function etcdEnvironment(spec: EtcdMemberSpec, pki: EtcdPaths): Record<string, string> {
  const urls = etcdUrls(spec.address);
  return {
    ETCD_NAME: spec.name,
    ETCD_DATA_DIR: spec.dataDir,
    ETCD_LISTEN_CLIENT_URLS: `${urls.client},https://127.0.0.1:${ETCD_CLIENT_PORT}`,
    ETCD_ADVERTISE_CLIENT_URLS: urls.client,
    ETCD_LISTEN_PEER_URLS: urls.peer,
    ETCD_INITIAL_ADVERTISE_PEER_URLS: urls.peer,
    ETCD_LISTEN_METRICS_URLS: urls.metrics,
    ETCD_INITIAL_CLUSTER: spec.cluster,
    ETCD_INITIAL_CLUSTER_STATE: spec.state,
    ...(spec.token ? { ETCD_INITIAL_CLUSTER_TOKEN: spec.token } : {}),
    ETCD_CERT_FILE: pki.serverCert,
    ETCD_KEY_FILE: pki.serverKey,
    ETCD_CLIENT_CERT_AUTH: 'true',
    ETCD_TRUSTED_CA_FILE: pki.caCert,
    ETCD_PEER_CERT_FILE: pki.peerCert,
    ETCD_PEER_KEY_FILE: pki.peerKey,
    ETCD_PEER_CLIENT_CERT_AUTH: 'true',
    ETCD_PEER_TRUSTED_CA_FILE: pki.caCert,
  };
}

/** `<pki.env>` written from `etcdEnvironment`; its path. */
export async function writeEtcdEnvironment(spec: EtcdMemberSpec, pki: EtcdPaths): Promise<string> {
  const text = Object.entries(etcdEnvironment(spec, pki))
    .map(([k, v]) => `${k}=${v}`)
    .join('\n');
  await writeFileAtomic(pki.env, `${text}\n`, PUBLIC);
  return pki.env;
}

export function parseEnvironmentFile(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^\s*([A-Z_][A-Z0-9_]*)=(.*)$/.exec(line);
    if (m) env[m[1] as string] = (m[2] as string).trim();
  }
  return env;
}

async function etcdHealthy(url: string, pem: EtcdClientPem): Promise<boolean> {
  try {
    const r = await etcdCall(url, '/health', undefined, pem, 2_000);
    return r.json.health === 'true';
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

/** Waits until etcd at `address` says it is healthy. */
export async function waitForEtcd(
  address: string,
  name: string,
  home: string,
  timeoutMs: number,
  pem: EtcdClientPem,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await etcdHealthy(etcdUrls(address).client, pem))) {
    if (Date.now() > deadline) {
      throw new CliError(
        'ETCD_MEMBER_ADD_FAILED',
        `etcd ${name} is not healthy; see ${home}/etcd.log`,
      );
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}
