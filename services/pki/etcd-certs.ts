/**
 * etcd's own X.509 material, as kubeadm lays it out: a separate etcd CA
 * (`<home>/pki/etcd/ca.crt`, `ca.key`) issuing each member's server and peer
 * certificates and the client certificate clusterd connects with.
 *
 * Why a CA of its own and not the cluster CA with an etcd organisation: etcd
 * (`--client-cert-auth --trusted-ca-file`) admits every certificate its
 * trusted CA signed, whatever the subject (amalgam runs etcd without its RBAC).
 * The cluster CA signs a certificate for every joining node and for every
 * admin; trusting it would hand every node the whole store again. Only the
 * control-plane machines hold the etcd CA key, and only clusterd (and the
 * members themselves) get certificates from it.
 */
import { isIP } from 'node:net';
import { type ClusterCa, createClusterCa, loadCaSigner } from './ca.ts';
import { issueCertificate, validateIssueOptions } from './issue.ts';
import { generateKeyPair } from './keys.ts';

export const ETCD_CA_COMMON_NAME = 'amalgam-etcd-ca';
export const ETCD_ORGANIZATION = 'amalgam:etcd';
/** The CN of the client certificate clusterd presents to etcd. */
export const ETCD_CLUSTERD_CLIENT_NAME = 'clusterd';
export const DEFAULT_ETCD_CERT_VALIDITY_DAYS = 365;
const DNS_NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;

/**
 * - `server`: what a member serves its client URL with. It is also a client
 *   certificate: etcd's own gRPC gateway dials the member's gRPC port with it.
 * - `peer`: what members present to each other (both ends of a peer link).
 * - `client`: what clusterd (and `clusteradm` while it adds a member) present.
 */
export type EtcdCertKind = 'server' | 'peer' | 'client';

export interface EtcdCertRequest {
  kind: EtcdCertKind;
  /** The member's name (server, peer) or the client's (`clusterd`). */
  commonName: string;
  /** Server and peer: the names and addresses the certificate is valid for. */
  dnsNames?: string[];
  ipAddresses?: string[];
  validityDays?: number;
  now?: Date;
}

export interface EtcdCredential {
  certPem: string;
  /** PKCS#8 PEM, unencrypted. */
  keyPem: string;
}

/** A new etcd CA (ten years, as kubeadm's etcd/ca.crt). */
export function createEtcdCa(now?: Date): Promise<ClusterCa> {
  return createClusterCa({ commonName: ETCD_CA_COMMON_NAME, ...(now ? { now } : {}) });
}

/** A key generated here and its certificate from `etcdCa`, as `request` says. */
export async function issueEtcdCredential(
  etcdCa: ClusterCa,
  request: EtcdCertRequest,
): Promise<EtcdCredential> {
  const spec = validateIssueOptions({
    commonName: request.commonName,
    organization: ETCD_ORGANIZATION,
    ...(request.kind === 'client'
      ? {}
      : { dnsNames: request.dnsNames ?? [], ipAddresses: request.ipAddresses ?? [] }),
    usages: request.kind === 'client' ? ['client'] : ['server', 'client'],
    validityDays: request.validityDays ?? DEFAULT_ETCD_CERT_VALIDITY_DAYS,
    now: request.now,
  });
  const signer = await loadCaSigner(etcdCa);
  const { keys, keyPem } = await generateKeyPair();
  const certPem = await issueCertificate(signer, keys.publicKey, spec);
  return { certPem, keyPem };
}

/** The names a member's server and peer certificates carry: loopback, its address, its host name. */
export function etcdMemberAltNames(
  address: string,
  hostname?: string,
): { dnsNames: string[]; ipAddresses: string[] } {
  const dns = new Set(['localhost']);
  const ips = new Set(['127.0.0.1', '::1']);
  for (const name of [address, hostname ?? '']) {
    if (isIP(name) !== 0) ips.add(name);
    else if (DNS_NAME.test(name.toLowerCase())) dns.add(name.toLowerCase());
  }
  return { dnsNames: [...dns], ipAddresses: [...ips] };
}
