/**
 * The admin home that `clusteradm init` creates:
 *
 *   <home>/pki/ca.crt ca.key            the cluster CA (the key signs every node certificate)
 *   <home>/pki/admin.crt admin.key      the admin client credential
 *   <home>/pki/clusterd.crt .key        clusterd's server certificate, followed by ca.crt
 *                                       (joining machines read the CA from the handshake)
 *   <home>/pki/etcd/, etcd.env, etcd/    with --store etcd: the etcd CA, this machine's etcd
 *                                       certificates and clusterd's etcd client certificate,
 *                                       the first member's flags and data (etcd-files.ts)
 *   <home>/clusterd.json                clusterd's configuration
 *   <home>/admin.json                   clusteradm's configuration
 *   <home>/data/                        the embedded store
 *   <home>/clusterd.log .pid            the clusterd that init started
 *
 * Private keys are 0600 in a 0700 directory.
 */
import { lstat, rm } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { isLoopbackHost } from '../core/endpoints.ts';
import {
  caCertHash,
  clusterdSubject,
  createClusterCa,
  createEtcdCa,
  createKeyAndCsr,
  issueAdminCredential,
  signCsr,
} from '../pki/index.ts';
import type { AdminConfig } from './config.ts';
import { etcdPaths, etcdStoreTls, writeEtcdPki } from './etcd-files.ts';
import { etcdUrls, writeEtcdEnvironment } from './etcd-member.ts';
import { ensureDir, PRIVATE, PUBLIC, writeFileAtomic, writeJson } from './files.ts';

export interface ClusterHome {
  home: string;
  pki: string;
  caCert: string;
  caKey: string;
  adminCert: string;
  adminKey: string;
  serverCert: string;
  serverKey: string;
  clusterdConfig: string;
  adminConfig: string;
  dataDir: string;
  log: string;
  pid: string;
}

export function clusterHome(home: string): ClusterHome {
  const pki = join(home, 'pki');
  return {
    home,
    pki,
    caCert: join(pki, 'ca.crt'),
    caKey: join(pki, 'ca.key'),
    adminCert: join(pki, 'admin.crt'),
    adminKey: join(pki, 'admin.key'),
    serverCert: join(pki, 'clusterd.crt'),
    serverKey: join(pki, 'clusterd.key'),
    clusterdConfig: join(home, 'clusterd.json'),
    adminConfig: join(home, 'admin.json'),
    dataDir: join(home, 'data'),
    log: join(home, 'clusterd.log'),
    pid: join(home, 'clusterd.pid'),
  };
}

/** What `init` owns in a home; `--force` removes exactly these, never the directory itself. */
function ownedEntries(layout: ClusterHome): string[] {
  const etcd = etcdPaths(layout.home);
  return [
    layout.pki,
    layout.dataDir,
    etcd.env,
    etcd.dataDir,
    layout.clusterdConfig,
    layout.adminConfig,
    layout.log,
    layout.pid,
  ];
}

/** The entries of a previous `init` present in the home. */
export async function existingEntries(layout: ClusterHome): Promise<string[]> {
  const found: string[] = [];
  for (const path of ownedEntries(layout)) {
    try {
      await lstat(path);
      found.push(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
  return found;
}

export async function clearHome(layout: ClusterHome): Promise<void> {
  for (const path of ownedEntries(layout)) await rm(path, { recursive: true, force: true });
}

export type StoreConfig =
  | { backend: 'embedded'; dataDir: string }
  | { backend: 'etcd'; endpoints: string[]; tls: { ca: string; cert: string; key: string } };

/** clusterd's `--config` file. */
export interface ClusterdConfig {
  clusterName: string;
  listen: { host: string; port: number };
  tls: { certFile: string; keyFile: string; caFile: string; caKeyFile: string };
  store: StoreConfig;
  logLevel?: string;
  /** Set when clusterd listens on loopback: only this machine can join (core/endpoints.ts). */
  singleMachine?: boolean;
}

export interface InitSpec {
  clusterName: string;
  listen: { host: string; port: number };
  /** The IP that other machines (and the admin configuration) reach clusterd at. */
  advertiseAddress: string;
  /** etcd: the endpoints clusterd uses, and the name of the member on this machine. */
  store: { backend: 'embedded' } | { backend: 'etcd'; endpoints: string[]; memberName: string };
  hostname: string;
}

export interface CreatedHome {
  caCertHash: string;
  /** `https://<advertise>:<port>`. */
  server: string;
  adminConfig: AdminConfig;
  clusterdConfig: ClusterdConfig;
}

const WILDCARDS = new Set(['0.0.0.0', '::', '']);
const DNS_NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;

export function urlHost(address: string): string {
  return isIP(address) === 6 ? `[${address}]` : address;
}

/** The names clients may use for clusterd: loopback, the advertise address, the host name, the listen host. */
export function serverAltNames(spec: InitSpec): { dnsNames: string[]; ipAddresses: string[] } {
  const dns = new Set(['localhost']);
  const ips = new Set(['127.0.0.1', '::1']);
  const host = spec.hostname.toLowerCase();
  if (DNS_NAME.test(host)) dns.add(host);
  for (const address of [spec.advertiseAddress, spec.listen.host]) {
    if (WILDCARDS.has(address)) continue;
    if (isIP(address) !== 0) ips.add(address);
    else if (DNS_NAME.test(address.toLowerCase())) dns.add(address.toLowerCase());
  }
  return { dnsNames: [...dns], ipAddresses: [...ips] };
}

export async function createClusterHome(layout: ClusterHome, spec: InitSpec): Promise<CreatedHome> {
  await ensureDir(layout.home);
  await ensureDir(layout.pki);

  const ca = await createClusterCa();
  const admin = await issueAdminCredential(ca);
  const server = await createKeyAndCsr({ commonName: 'clusterd' });
  const serverCert = await signCsr(ca, server.csrPem, {
    ...clusterdSubject(),
    ...serverAltNames(spec),
    usages: ['server'],
    validityDays: 365,
  });

  await writeFileAtomic(layout.caKey, ca.keyPem, PRIVATE);
  await writeFileAtomic(layout.caCert, ca.certPem, PUBLIC);
  await writeFileAtomic(layout.adminKey, admin.keyPem, PRIVATE);
  await writeFileAtomic(layout.adminCert, admin.certPem, PUBLIC);
  await writeFileAtomic(layout.serverKey, server.keyPem, PRIVATE);
  // The chain with the CA in it: `clusteradm join` reads the CA from the handshake.
  await writeFileAtomic(layout.serverCert, `${serverCert.trimEnd()}\n${ca.certPem}`, PUBLIC);

  const clusterdConfig: ClusterdConfig = {
    clusterName: spec.clusterName,
    listen: spec.listen,
    tls: {
      certFile: layout.serverCert,
      keyFile: layout.serverKey,
      caFile: layout.caCert,
      caKeyFile: layout.caKey,
    },
    store:
      spec.store.backend === 'embedded'
        ? { backend: 'embedded', dataDir: layout.dataDir }
        : {
            backend: 'etcd',
            endpoints: spec.store.endpoints,
            tls: etcdStoreTls(etcdPaths(layout.home)),
          },
    // A clusterd on loopback serves this machine only: its page server may publish loopback.
    ...(isLoopbackHost(spec.listen.host) ? { singleMachine: true } : {}),
  };
  if (spec.store.backend === 'etcd')
    await createFirstEtcdMember(layout, spec, spec.store.memberName);
  await writeJson(layout.clusterdConfig, clusterdConfig, PRIVATE);

  const url = `https://${urlHost(spec.advertiseAddress)}:${spec.listen.port}`;
  const adminConfig: AdminConfig = {
    server: [url],
    caFile: layout.caCert,
    certFile: layout.adminCert,
    keyFile: layout.adminKey,
  };
  await writeJson(layout.adminConfig, adminConfig, PRIVATE);
  return { caCertHash: caCertHash(ca.certPem), server: url, adminConfig, clusterdConfig };
}

/**
 * `init --store etcd`: the etcd CA, this machine's etcd certificates and clusterd's client
 * certificate, and `<home>/etcd.env` for the first member of a new etcd cluster
 * (`ETCD_INITIAL_CLUSTER_STATE=new`; later members come with `join --control-plane`).
 */
async function createFirstEtcdMember(
  layout: ClusterHome,
  spec: InitSpec,
  name: string,
): Promise<void> {
  const paths = etcdPaths(layout.home);
  const member = { name, address: spec.advertiseAddress, hostname: spec.hostname };
  await writeEtcdPki(paths, await createEtcdCa(), member);
  await writeEtcdEnvironment(
    {
      ...member,
      dataDir: paths.dataDir,
      cluster: `${name}=${etcdUrls(spec.advertiseAddress).peer}`,
      state: 'new',
      token: `amalgam-${spec.clusterName}`,
    },
    paths,
  );
}
