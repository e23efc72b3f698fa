/**
 * `clusteradm join URL --control-plane ...`: makes this machine one more control-plane machine
 * (an etcd member and a clusterd replica), run on the machine that joins.
 *
 *  1. The server's CA is pinned by `--ca-cert-hash` (as for a node join), and the CA in
 *     `--pki-dir` (ca.crt and ca.key, copied from the first control machine's `<home>/pki`, as
 *     kubeadm's manual certificate distribution) must be that same CA: clusterd signs node
 *     certificates with its key.
 *  2. etcd grows by one: `member add` with this machine's peer URL on the existing members
 *     (retried while etcd says the cluster is not ready for one more), never a second cluster.
 *  3. `<home>/etcd.env` (the `EnvironmentFile` of deploy/systemd/amalgam-etcd.service:
 *     `ETCD_INITIAL_CLUSTER_STATE=existing` and every member so far), a server certificate for
 *     `--advertise-address`, and `<home>/clusterd.json` on every etcd member.
 *  4. Unless `--no-start`: etcd and clusterd are started detached and waited for.
 * Re-running it after a failure is safe: a member already added with this peer URL is reused.
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join as joinPath } from 'node:path';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { createClient, discoverCa } from '../client/index.ts';
import { createKeyAndCsr, issueAdminCredential, signCsr, verifyCaCertHash } from '../pki/index.ts';
import { type ClusterdConfig, clusterHome, serverAltNames, urlHost } from './cluster-home.ts';
import { startClusterd, waitUntilReady } from './clusterd-process.ts';
import type { CliContext } from './context.ts';
import { CliError, usageError } from './errors.ts';
import { ensureDir, PRIVATE, PUBLIC, writeFileAtomic, writeJson } from './files.ts';
import { parseListen } from './init.ts';
import { type OutputFormat, renderFields, toJson } from './output.ts';

/** The flags `join` takes for `--control-plane` (see controlPlaneOptions). */
export interface ControlPlaneFlags {
  controlPlane?: boolean;
  pkiDir?: string;
  advertiseAddress?: string;
  etcdEndpoints?: string[];
  listen: { host: string; port: number };
  start: boolean;
}

function parseIp(text: string): string {
  if (isIP(text) === 0) throw new InvalidArgumentError('an IP address is required');
  return text;
}

function parseEndpoints(text: string): string[] {
  const urls = text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (urls.length === 0 || !urls.every((u) => /^https?:\/\/[^/\s]+\/?$/.test(u))) {
    throw new InvalidArgumentError('comma-separated etcd client URLs are required');
  }
  return urls;
}

export function controlPlaneOptions(command: Command): void {
  command
    .option(
      '--control-plane',
      'join as one more control-plane machine (etcd member + clusterd) instead of as a node',
    )
    .option('--pki-dir <dir>', 'with --control-plane: ca.crt and ca.key of the cluster CA')
    .option(
      '--advertise-address <ip>',
      "with --control-plane: this machine's address for etcd peers and clients",
      parseIp,
    )
    .option(
      '--etcd-endpoints <urls>',
      'with --control-plane: client URLs of the existing etcd members',
      parseEndpoints,
    )
    .addOption(
      new Option('--listen <host:port>', 'with --control-plane: where clusterd listens')
        .argParser(parseListen)
        .default({ host: '0.0.0.0', port: 6443 }, '0.0.0.0:6443'),
    )
    .option('--no-start', 'with --control-plane: write the files, start neither etcd nor clusterd');
}

export function controlPlaneSettings(
  flags: ControlPlaneFlags,
): Pick<
  ControlPlaneJoinOptions,
  'pkiDir' | 'advertiseAddress' | 'etcdEndpoints' | 'listen' | 'start'
> {
  if (!flags.pkiDir) throw usageError('--control-plane needs --pki-dir');
  if (!flags.advertiseAddress) throw usageError('--control-plane needs --advertise-address');
  if (!flags.etcdEndpoints) throw usageError('--control-plane needs --etcd-endpoints');
  return {
    pkiDir: flags.pkiDir,
    advertiseAddress: flags.advertiseAddress,
    etcdEndpoints: flags.etcdEndpoints,
    listen: flags.listen,
    start: flags.start,
  };
}

export interface ControlPlaneJoinOptions {
  name: string;
  home: string;
  pkiDir: string;
  advertiseAddress: string;
  etcdEndpoints: string[];
  listen: { host: string; port: number };
  start: boolean;
  waitTimeoutSeconds: number;
  output: OutputFormat;
}

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

export async function joinControlPlane(
  context: CliContext,
  server: string,
  caCertHash: string,
  o: ControlPlaneJoinOptions,
): Promise<void> {
  const progress = (line: string): void => context.stderr(`[join] ${line}\n`);

  // 1. The CA: pinned from the handshake, and the one whose key we were given.
  progress(`reading the CA of ${server}`);
  const { ca } = await discoverCa(server);
  if (!verifyCaCertHash(ca, caCertHash)) {
    throw new CliError('CA_HASH_MISMATCH', `${server} presented a CA that is not ${caCertHash}`, {
      server,
    });
  }
  const read = async (file: string): Promise<string> => {
    try {
      return await readFile(joinPath(o.pkiDir, file), 'utf8');
    } catch (err) {
      throw new CliError('CONFIG_INVALID', `--pki-dir: ${(err as Error).message}`, { file });
    }
  };
  const caCert = await read('ca.crt');
  const caKey = await read('ca.key');
  if (!verifyCaCertHash(caCert, caCertHash)) {
    throw new CliError('CA_HASH_MISMATCH', `${o.pkiDir}/ca.crt is not the CA ${caCertHash}`);
  }

  // The cluster's name, asked before etcd grows: until the new member runs, a 2-member etcd
  // has no quorum.
  const info = await (async () => {
    // Holding the CA key is holding every credential: a short-lived admin one asks the name.
    const admin = await issueAdminCredential(
      { certPem: caCert, keyPem: caKey },
      { validityDays: 1 },
    );
    const client = createClient({
      endpoints: [server],
      ca,
      cert: admin.certPem,
      key: admin.keyPem,
    });
    try {
      return await client.cluster.info();
    } finally {
      await client.close();
    }
  })();

  // 2. One more etcd member.
  const layout = clusterHome(o.home);
  await ensureDir(layout.home);
  await ensureDir(layout.pki);
  const host = urlHost(o.advertiseAddress);
  const peerUrl = `http://${host}:${ETCD_PEER_PORT}`;
  progress(`etcd member add ${o.name} ${peerUrl}`);
  const members = await addEtcdMember(o.etcdEndpoints, peerUrl, o.waitTimeoutSeconds * 1000);
  const cluster = initialCluster(members, o.name, peerUrl);

  // 3. Files: etcd.env, clusterd's certificate for this address, clusterd.json.
  const envFile = joinPath(layout.home, 'etcd.env');
  const env = etcdEnvironment(o.name, o.advertiseAddress, joinPath(layout.home, 'etcd'), cluster);
  await writeFileAtomic(
    envFile,
    `${Object.entries(env)
      .map(([k, v]) => `${k}=${v}`)
      .join('\n')}\n`,
    PUBLIC,
  );
  const serverKey = await createKeyAndCsr({ commonName: 'clusterd' });
  const cert = await signCsr({ certPem: caCert, keyPem: caKey }, serverKey.csrPem, {
    commonName: 'clusterd',
    ...serverAltNames({
      clusterName: '',
      listen: o.listen,
      advertiseAddress: o.advertiseAddress,
      store: { backend: 'embedded' },
      hostname: context.hostname(),
    }),
    usages: ['server'],
    validityDays: 365,
  });
  await writeFileAtomic(layout.caCert, caCert, PUBLIC);
  await writeFileAtomic(layout.caKey, caKey, PRIVATE);
  await writeFileAtomic(layout.serverKey, serverKey.keyPem, PRIVATE);
  await writeFileAtomic(layout.serverCert, `${cert.trimEnd()}\n${caCert}`, PUBLIC);
  const endpoints = [...new Set([...o.etcdEndpoints, `http://${host}:${ETCD_CLIENT_PORT}`])];
  const config: ClusterdConfig = {
    clusterName: info.name,
    listen: o.listen,
    tls: {
      certFile: layout.serverCert,
      keyFile: layout.serverKey,
      caFile: layout.caCert,
      caKeyFile: layout.caKey,
    },
    store: { backend: 'etcd', endpoints },
  };
  await writeJson(layout.clusterdConfig, config, PRIVATE);
  const url = `https://${host}:${o.listen.port}`;

  // 4. Start etcd, then clusterd.
  let pids: { etcd: number; clusterd: number } | undefined;
  if (o.start) {
    const log = openSync(joinPath(layout.home, 'etcd.log'), 'a', 0o600);
    let etcdPid: number | undefined;
    try {
      const child = spawn('etcd', [], {
        detached: true,
        stdio: ['ignore', log, log],
        env: { ...process.env, ...parseEnvironmentFile(await readFile(envFile, 'utf8')) },
      });
      child.on('error', () => {});
      child.unref();
      etcdPid = child.pid;
    } finally {
      closeSync(log);
    }
    progress(`started etcd (pid ${etcdPid}); waiting for it to be healthy`);
    const deadline = Date.now() + o.waitTimeoutSeconds * 1000;
    while (!(await etcdHealthy(`http://${host}:${ETCD_CLIENT_PORT}`))) {
      if (Date.now() > deadline) {
        throw new CliError(
          'ETCD_MEMBER_ADD_FAILED',
          `etcd ${o.name} is not healthy; see ${layout.home}/etcd.log`,
        );
      }
      await new Promise((r) => setTimeout(r, 250));
    }
    const started = await startClusterd(layout);
    const client = createClient({ endpoints: [url], ca });
    try {
      await waitUntilReady(client, started, o.waitTimeoutSeconds * 1000);
    } finally {
      await client.close();
    }
    pids = { etcd: etcdPid ?? 0, clusterd: started.pid };
  }

  const result = {
    controlPlane: o.name,
    server: url,
    etcdMembers: cluster.split(','),
    etcdEnvironment: envFile,
    clusterdConfig: layout.clusterdConfig,
    started: pids ?? null,
  };
  if (o.output === 'json') {
    context.stdout(toJson(result));
  } else {
    context.stdout(
      renderFields([
        ['Control plane', `${o.name} (${url})`],
        ['etcd members', result.etcdMembers.join(' ')],
        ['etcd environment', envFile],
        ['clusterd config', layout.clusterdConfig],
        [
          'Started',
          pids ? `etcd pid ${pids.etcd}, clusterd pid ${pids.clusterd}` : 'no (--no-start)',
        ],
      ]),
    );
  }
  if (!o.start) {
    progress(
      `start etcd with the variables of ${envFile} (deploy/systemd/amalgam-etcd.service), then clusterd --config ${layout.clusterdConfig}`,
    );
  }
}
