/**
 * The etcd TLS material of a test cluster, made as `clusteradm` makes it (services/pki
 * etcd-certs.ts): an etcd CA, one server and one peer certificate for 127.0.0.1/localhost shared
 * by the members, and clusterd's client certificate (CN `clusterd`). The members run with
 * `--client-cert-auth` and `--peer-client-cert-auth`, so every etcd-backed test goes through the
 * secure path.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ClusterCa } from '../../services/pki/ca.ts';
import {
  createEtcdCa,
  ETCD_CLUSTERD_CLIENT_NAME,
  type EtcdCredential,
  issueEtcdCredential,
} from '../../services/pki/etcd-certs.ts';
import type { EtcdCredentials, EtcdTlsFiles } from '../../services/store/etcd-tls.ts';

export interface EtcdPem {
  ca: string;
  cert: string;
  key: string;
}

export interface EtcdTestPki {
  etcdCa: ClusterCa;
  /** clusterd's `store.tls` (file paths). */
  clientFiles: EtcdTlsFiles;
  /** The same client credential for `new EtcdStore({credentials})` / `new Etcd3({credentials})`. */
  credentials: EtcdCredentials;
  /** The same client credential as PEM strings (node:https, tls.connect). */
  clientPem: EtcdPem;
  /** The members' server credential: a proxy standing in for a member serves with it. */
  serverPem: EtcdPem;
  /** The etcd flags every member runs with. */
  memberArgs: string[];
}

const HOSTS = { dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] };

async function writePair(dir: string, name: string, c: EtcdCredential): Promise<EtcdPem> {
  await writeFile(join(dir, `${name}.crt`), c.certPem);
  await writeFile(join(dir, `${name}.key`), c.keyPem, { mode: 0o600 });
  return { ca: '', cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) };
}

/** Writes the material into `dir` (which must exist) and returns where it is. */
export async function createEtcdTestPki(dir: string): Promise<EtcdTestPki> {
  const etcdCa = await createEtcdCa();
  const [server, peer, client] = await Promise.all([
    issueEtcdCredential(etcdCa, { kind: 'server', commonName: 'etcd-server', ...HOSTS }),
    issueEtcdCredential(etcdCa, { kind: 'peer', commonName: 'etcd-peer', ...HOSTS }),
    issueEtcdCredential(etcdCa, { kind: 'client', commonName: ETCD_CLUSTERD_CLIENT_NAME }),
  ]);
  const caFile = join(dir, 'ca.crt');
  await writeFile(caFile, etcdCa.certPem);
  const serverFiles = await writePair(dir, 'server', server);
  const peerFiles = await writePair(dir, 'peer', peer);
  const clientFiles = await writePair(dir, 'clusterd-client', client);
  return {
    etcdCa,
    clientFiles: { ca: caFile, cert: clientFiles.cert, key: clientFiles.key },
    credentials: {
      rootCertificate: Buffer.from(etcdCa.certPem),
      certChain: Buffer.from(client.certPem),
      privateKey: Buffer.from(client.keyPem),
    },
    clientPem: { ca: etcdCa.certPem, cert: client.certPem, key: client.keyPem },
    serverPem: { ca: etcdCa.certPem, cert: server.certPem, key: server.keyPem },
    memberArgs: [
      '--cert-file',
      serverFiles.cert,
      '--key-file',
      serverFiles.key,
      '--client-cert-auth',
      '--trusted-ca-file',
      caFile,
      '--peer-cert-file',
      peerFiles.cert,
      '--peer-key-file',
      peerFiles.key,
      '--peer-client-cert-auth',
      '--peer-trusted-ca-file',
      caFile,
    ],
  };
}
