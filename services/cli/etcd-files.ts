/**
 * etcd's files in a cluster home, laid out as kubeadm's:
 *
 *   <home>/pki/etcd/ca.crt ca.key           the etcd CA (only control-plane machines hold it;
 *                                           not the cluster CA: see services/pki/etcd-certs.ts)
 *   <home>/pki/etcd/server.crt .key         this member's client-URL certificate
 *   <home>/pki/etcd/peer.crt .key           this member's peer certificate
 *   <home>/pki/etcd/clusterd-client.crt .key  clusterd's client certificate (CN clusterd); also
 *                                           what clusteradm presents for `member add`
 *   <home>/etcd.env                         the member's flags (systemd EnvironmentFile)
 *   <home>/etcd/                            the member's data directory
 *
 * etcd serves clients and peers over https only and asks both for a certificate of the etcd CA.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  type ClusterCa,
  ETCD_CLUSTERD_CLIENT_NAME,
  etcdMemberAltNames,
  issueEtcdCredential,
} from '../pki/index.ts';
import { CliError } from './errors.ts';
import { ensureDir, PRIVATE, PUBLIC, writeFileAtomic } from './files.ts';

export interface EtcdPaths {
  dir: string;
  caCert: string;
  caKey: string;
  serverCert: string;
  serverKey: string;
  peerCert: string;
  peerKey: string;
  clientCert: string;
  clientKey: string;
  env: string;
  dataDir: string;
}

export function etcdPaths(home: string): EtcdPaths {
  const dir = join(home, 'pki', 'etcd');
  return {
    dir,
    caCert: join(dir, 'ca.crt'),
    caKey: join(dir, 'ca.key'),
    serverCert: join(dir, 'server.crt'),
    serverKey: join(dir, 'server.key'),
    peerCert: join(dir, 'peer.crt'),
    peerKey: join(dir, 'peer.key'),
    clientCert: join(dir, 'clusterd-client.crt'),
    clientKey: join(dir, 'clusterd-client.key'),
    env: join(home, 'etcd.env'),
    dataDir: join(home, 'etcd'),
  };
}

/** clusterd's `store.tls`: the etcd CA, its client certificate and key. */
export function etcdStoreTls(paths: EtcdPaths): { ca: string; cert: string; key: string } {
  return { ca: paths.caCert, cert: paths.clientCert, key: paths.clientKey };
}

/** The client credential as PEM, for clusteradm's own calls to etcd (member add, health). */
export interface EtcdClientPem {
  ca: string;
  cert: string;
  key: string;
}

/**
 * The etcd CA, this member's server and peer certificates (valid for `address`, loopback and
 * `hostname`) and clusterd's client certificate, written into `<home>/pki/etcd`.
 */
export async function writeEtcdPki(
  paths: EtcdPaths,
  etcdCa: ClusterCa,
  member: { name: string; address: string; hostname: string },
): Promise<EtcdClientPem> {
  await ensureDir(paths.dir);
  const names = etcdMemberAltNames(member.address, member.hostname);
  const [server, peer, client] = await Promise.all([
    issueEtcdCredential(etcdCa, { kind: 'server', commonName: member.name, ...names }),
    issueEtcdCredential(etcdCa, { kind: 'peer', commonName: member.name, ...names }),
    issueEtcdCredential(etcdCa, { kind: 'client', commonName: ETCD_CLUSTERD_CLIENT_NAME }),
  ]);
  await writeFileAtomic(paths.caCert, etcdCa.certPem, PUBLIC);
  await writeFileAtomic(paths.caKey, etcdCa.keyPem, PRIVATE);
  await writeFileAtomic(paths.serverCert, server.certPem, PUBLIC);
  await writeFileAtomic(paths.serverKey, server.keyPem, PRIVATE);
  await writeFileAtomic(paths.peerCert, peer.certPem, PUBLIC);
  await writeFileAtomic(paths.peerKey, peer.keyPem, PRIVATE);
  await writeFileAtomic(paths.clientCert, client.certPem, PUBLIC);
  await writeFileAtomic(paths.clientKey, client.keyPem, PRIVATE);
  return { ca: etcdCa.certPem, cert: client.certPem, key: client.keyPem };
}

/** `<pkiDir>/etcd/ca.crt` and `ca.key`, copied from the first control machine's `<home>/pki`. */
export async function readEtcdCa(pkiDir: string): Promise<ClusterCa> {
  const read = async (file: string): Promise<string> => {
    try {
      return await readFile(join(pkiDir, 'etcd', file), 'utf8');
    } catch (err) {
      throw new CliError(
        'CONFIG_INVALID',
        `--pki-dir: ${(err as Error).message} (the etcd CA: copy <home>/pki/etcd/ca.crt and ca.key too)`,
        { file: `etcd/${file}` },
      );
    }
  };
  return { certPem: await read('ca.crt'), keyPem: await read('ca.key') };
}
