/**
 * `clusteradm join URL --control-plane ...`: makes this machine one more control-plane machine
 * (an etcd member and a clusterd replica), run on the machine that joins.
 *
 *  1. The server's CA is pinned by `--ca-cert-hash` (as for a node join), and the CA in
 *     `--pki-dir` (ca.crt and ca.key, copied from the first control machine's `<home>/pki`, as
 *     kubeadm's manual certificate distribution) must be that same CA: clusterd signs node
 *     certificates with its key. `--pki-dir` also holds the etcd CA (etcd/ca.crt, etcd/ca.key):
 *     this machine issues its own etcd server, peer and clusterd client certificates with it,
 *     and etcd (https only, client certificates required) refuses a CA that is not its own.
 *  2. etcd grows by one: `member add` with this machine's peer URL on the existing members
 *     (retried while etcd says the cluster is not ready for one more), never a second cluster.
 *  3. `<home>/etcd.env` (the `EnvironmentFile` of deploy/systemd/amalgam-etcd.service:
 *     `ETCD_INITIAL_CLUSTER_STATE=existing`, every member so far, the TLS files), a server
 *     certificate for `--advertise-address`, and `<home>/clusterd.json` on every etcd member
 *     (https endpoints and `store.tls`).
 *  4. Unless `--no-start`: etcd and clusterd are started detached and waited for.
 * Re-running it after a failure is safe: a member already added with this peer URL is reused.
 */
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join as joinPath } from 'node:path';
import { type Command, InvalidArgumentError, Option } from 'commander';
import type { ClusterInfo } from '../api/contracts.ts';
import { createClient } from '../client/index.ts';
import {
  clusterdSubject,
  createKeyAndCsr,
  issueAdminCredential,
  signCsr,
  verifyCaCertHash,
} from '../pki/index.ts';
import {
  type ClusterdConfig,
  type ClusterHome,
  clusterHome,
  serverAltNames,
  urlHost,
} from './cluster-home.ts';
import { startClusterd, waitUntilReady } from './clusterd-process.ts';
import type { CliContext } from './context.ts';
import { CliError, usageError } from './errors.ts';
import {
  type EtcdClientPem,
  type EtcdPaths,
  etcdPaths,
  etcdStoreTls,
  readEtcdCa,
  writeEtcdPki,
} from './etcd-files.ts';
import {
  addEtcdMember,
  etcdUrls,
  initialCluster,
  spawnEtcd,
  waitForEtcd,
  writeEtcdEnvironment,
} from './etcd-member.ts';
import { ensureDir, PRIVATE, PUBLIC, writeFileAtomic, writeJson } from './files.ts';
import { parseListen } from './init.ts';
import { type OutputFormat, renderFields, toJson } from './output.ts';
import { pinServerCa } from './pin-ca.ts';

export {
  etcdEnvironment,
  initialCluster,
  parseEnvironmentFile,
} from './etcd-member.ts';

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
  if (urls.length === 0 || !urls.every((u) => /^https:\/\/[^/\s]+\/?$/.test(u))) {
    throw new InvalidArgumentError(
      'comma-separated https:// etcd client URLs are required (etcd serves clients over TLS only)',
    );
  }
  return urls;
}

export function controlPlaneOptions(command: Command): void {
  command
    .option(
      '--control-plane',
      'join as one more control-plane machine (etcd member + clusterd) instead of as a node',
    )
    .option(
      '--pki-dir <dir>',
      'with --control-plane: ca.crt and ca.key of the cluster CA, etcd/ca.crt and etcd/ca.key of the etcd CA',
    )
    .option(
      '--advertise-address <ip>',
      "this machine's address: with --control-plane for etcd peers and clients; as a node, where its page server listens and what it publishes (default: the local address of the route to clusterd)",
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

interface CaPair {
  certPem: string;
  keyPem: string;
}

/** `--pki-dir`'s ca.crt and ca.key, which must be the pinned CA: clusterd signs with that key. */
async function readPkiDir(pkiDir: string, caCertHash: string): Promise<CaPair> {
  const read = async (file: string): Promise<string> => {
    try {
      return await readFile(joinPath(pkiDir, file), 'utf8');
    } catch (err) {
      throw new CliError('CONFIG_INVALID', `--pki-dir: ${(err as Error).message}`, { file });
    }
  };
  const certPem = await read('ca.crt');
  const keyPem = await read('ca.key');
  if (!verifyCaCertHash(certPem, caCertHash)) {
    throw new CliError('CA_HASH_MISMATCH', `${pkiDir}/ca.crt is not the CA ${caCertHash}`);
  }
  return { certPem, keyPem };
}

/**
 * The cluster's name, asked before etcd grows (until the new member runs, a
 * 2-member etcd has no quorum). Holding the CA key is holding every
 * credential: a short-lived admin one asks.
 */
async function askClusterInfo(server: string, ca: string, pair: CaPair): Promise<ClusterInfo> {
  const admin = await issueAdminCredential(pair, { validityDays: 1 });
  const client = createClient({ endpoints: [server], ca, cert: admin.certPem, key: admin.keyPem });
  try {
    return await client.cluster.info();
  } finally {
    await client.close();
  }
}

/** The CA, and a server certificate of clusterd for this machine's address. */
async function writeServerCredential(
  layout: ClusterHome,
  o: ControlPlaneJoinOptions,
  pair: CaPair,
  hostname: string,
): Promise<void> {
  const serverKey = await createKeyAndCsr({ commonName: 'clusterd' });
  const cert = await signCsr(pair, serverKey.csrPem, {
    ...clusterdSubject(),
    ...serverAltNames({
      clusterName: '',
      listen: o.listen,
      advertiseAddress: o.advertiseAddress,
      store: { backend: 'embedded' },
      hostname,
    }),
    usages: ['server'],
    validityDays: 365,
  });
  await writeFileAtomic(layout.caCert, pair.certPem, PUBLIC);
  await writeFileAtomic(layout.caKey, pair.keyPem, PRIVATE);
  await writeFileAtomic(layout.serverKey, serverKey.keyPem, PRIVATE);
  await writeFileAtomic(layout.serverCert, `${cert.trimEnd()}\n${pair.certPem}`, PUBLIC);
}

/** clusterd's configuration: the etcd store of every member, this one included. */
function clusterdConfigFor(
  layout: ClusterHome,
  o: ControlPlaneJoinOptions,
  clusterName: string,
): ClusterdConfig {
  const endpoints = [...new Set([...o.etcdEndpoints, etcdUrls(o.advertiseAddress).client])];
  return {
    clusterName,
    listen: o.listen,
    tls: {
      certFile: layout.serverCert,
      keyFile: layout.serverKey,
      caFile: layout.caCert,
      caKeyFile: layout.caKey,
    },
    store: { backend: 'etcd', endpoints, tls: etcdStoreTls(etcdPaths(layout.home)) },
  };
}

/** Starts etcd, waits until it is healthy, then clusterd, and waits until it is ready. */
async function startMember(
  layout: ClusterHome,
  o: ControlPlaneJoinOptions,
  envFile: string,
  url: string,
  ca: string,
  etcdPem: EtcdClientPem,
  progress: (line: string) => void,
): Promise<{ etcd: number; clusterd: number }> {
  const timeoutMs = o.waitTimeoutSeconds * 1000;
  const etcdPid = await spawnEtcd(layout.home, envFile);
  progress(`started etcd (pid ${etcdPid}); waiting for it to be healthy`);
  await waitForEtcd(o.advertiseAddress, o.name, layout.home, timeoutMs, etcdPem);
  const started = await startClusterd(layout);
  const client = createClient({ endpoints: [url], ca });
  try {
    await waitUntilReady(client, started, timeoutMs);
  } finally {
    await client.close();
  }
  return { etcd: etcdPid ?? 0, clusterd: started.pid };
}

interface ControlPlaneJoined {
  controlPlane: string;
  server: string;
  etcdMembers: string[];
  etcdEnvironment: string;
  clusterdConfig: string;
  started: { etcd: number; clusterd: number } | null;
}

function printJoined(context: CliContext, output: OutputFormat, result: ControlPlaneJoined): void {
  if (output === 'json') {
    context.stdout(toJson(result));
    return;
  }
  const { started } = result;
  context.stdout(
    renderFields([
      ['Control plane', `${result.controlPlane} (${result.server})`],
      ['etcd members', result.etcdMembers.join(' ')],
      ['etcd environment', result.etcdEnvironment],
      ['clusterd config', result.clusterdConfig],
      [
        'Started',
        started ? `etcd pid ${started.etcd}, clusterd pid ${started.clusterd}` : 'no (--no-start)',
      ],
    ]),
  );
}

export async function joinControlPlane(
  context: CliContext,
  server: string,
  caCertHash: string,
  o: ControlPlaneJoinOptions,
): Promise<void> {
  const progress = (line: string): void => context.stderr(`[join] ${line}\n`);

  // 1. The CA: pinned from the handshake, and the one whose key we were given.
  const ca = await pinServerCa(server, caCertHash, progress);
  const pair = await readPkiDir(o.pkiDir, caCertHash);
  const etcdCa = await readEtcdCa(o.pkiDir);
  const info = await askClusterInfo(server, ca, pair);

  // 2. This member's etcd certificates, then one more etcd member (asked with clusterd's).
  const layout = clusterHome(o.home);
  await ensureDir(layout.home);
  await ensureDir(layout.pki);
  const etcd: EtcdPaths = etcdPaths(layout.home);
  const member = { name: o.name, address: o.advertiseAddress, hostname: context.hostname() };
  const etcdPem = await writeEtcdPki(etcd, etcdCa, member);
  const peerUrl = etcdUrls(o.advertiseAddress).peer;
  progress(`etcd member add ${o.name} ${peerUrl}`);
  const timeoutMs = o.waitTimeoutSeconds * 1000;
  const members = await addEtcdMember(o.etcdEndpoints, peerUrl, timeoutMs, etcdPem);
  const cluster = initialCluster(members, o.name, peerUrl);

  // 3. Files: etcd.env, clusterd's certificate for this address, clusterd.json.
  const envFile = await writeEtcdEnvironment(
    { ...member, dataDir: etcd.dataDir, cluster, state: 'existing' },
    etcd,
  );
  await writeServerCredential(layout, o, pair, context.hostname());
  await writeJson(layout.clusterdConfig, clusterdConfigFor(layout, o, info.name), PRIVATE);
  const url = `https://${urlHost(o.advertiseAddress)}:${o.listen.port}`;

  // 4. Start etcd, then clusterd.
  const started = o.start
    ? await startMember(layout, o, envFile, url, ca, etcdPem, progress)
    : null;
  printJoined(context, o.output, {
    controlPlane: o.name,
    server: url,
    etcdMembers: cluster.split(','),
    etcdEnvironment: envFile,
    clusterdConfig: layout.clusterdConfig,
    started,
  });
  if (!o.start) {
    progress(
      `start etcd with the variables of ${envFile} (deploy/systemd/amalgam-etcd.service), then clusterd --config ${layout.clusterdConfig}`,
    );
  }
}
