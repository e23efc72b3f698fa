/**
 * The client credentials clusterd presents to etcd (etcd runs with
 * `--client-cert-auth`: a client without a certificate of the etcd CA gets
 * nothing). Loaded once at start and checked here, so that a wrong file is a
 * config error naming the field (`store.tls.cert`: "not issued by the CA in
 * store.tls.ca") instead of a connection that fails forever with UNAVAILABLE.
 */
import { createPrivateKey, type KeyObject, X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { AmalgamError } from '../core/errors.ts';

/** PEM files: the etcd CA, clusterd's client certificate and its key. */
export interface EtcdTlsFiles {
  ca: string;
  cert: string;
  key: string;
}

/** What the etcd3 client takes (`credentials`): the same three, as Buffers. */
export interface EtcdCredentials {
  rootCertificate: Buffer;
  certChain: Buffer;
  privateKey: Buffer;
}

const CLIENT_AUTH_OID = '1.3.6.1.5.5.7.3.2';

function configError(field: string, detail: string, cause?: unknown): AmalgamError {
  return new AmalgamError(
    'INVALID_ARGUMENT',
    `${field}: ${detail}`,
    { field },
    cause === undefined ? undefined : { cause },
  );
}

async function readPem(path: string, field: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (cause) {
    throw configError(field, `cannot read ${path}: ${(cause as Error).message}`, cause);
  }
}

function parseCert(pem: Buffer, field: string): X509Certificate {
  try {
    return new X509Certificate(pem);
  } catch (cause) {
    throw configError(field, 'not a PEM certificate', cause);
  }
}

function parseKey(pem: Buffer, field: string): KeyObject {
  try {
    return createPrivateKey(pem);
  } catch (cause) {
    throw configError(field, 'not a PEM private key', cause);
  }
}

/** The checks a TLS handshake with etcd would fail on, made before any connection. */
export function checkEtcdCredentials(
  pems: EtcdCredentials,
  prefix = 'store.tls',
  now = new Date(),
): void {
  const ca = parseCert(pems.rootCertificate, `${prefix}.ca`);
  const cert = parseCert(pems.certChain, `${prefix}.cert`);
  const key = parseKey(pems.privateKey, `${prefix}.key`);
  if (!ca.ca) throw configError(`${prefix}.ca`, `${ca.subject} is not a CA certificate`);
  if (!cert.checkIssued(ca) || !cert.verify(ca.publicKey)) {
    throw configError(
      `${prefix}.cert`,
      `not issued by the etcd CA in ${prefix}.ca (${ca.subject.replace(/\n/g, ', ')}): etcd would refuse it`,
    );
  }
  if (!cert.checkPrivateKey(key)) {
    throw configError(`${prefix}.key`, `not the key of the certificate in ${prefix}.cert`);
  }
  if (now < new Date(cert.validFrom) || now > new Date(cert.validTo)) {
    throw configError(
      `${prefix}.cert`,
      `valid from ${cert.validFrom} to ${cert.validTo}, not now: etcd would refuse it`,
    );
  }
  if (cert.keyUsage !== undefined && !cert.keyUsage.includes(CLIENT_AUTH_OID)) {
    throw configError(`${prefix}.cert`, 'not a client certificate (no clientAuth usage)');
  }
}

/** Reads and checks the three files; INVALID_ARGUMENT naming the field when one is wrong. */
export async function loadEtcdCredentials(
  files: EtcdTlsFiles,
  prefix = 'store.tls',
): Promise<EtcdCredentials> {
  const [rootCertificate, certChain, privateKey] = await Promise.all([
    readPem(files.ca, `${prefix}.ca`),
    readPem(files.cert, `${prefix}.cert`),
    readPem(files.key, `${prefix}.key`),
  ]);
  const credentials = { rootCertificate, certChain, privateKey };
  checkEtcdCredentials(credentials, prefix);
  return credentials;
}

/**
 * Endpoints and credentials must agree: `https://` needs credentials (etcd
 * asks every client for its certificate) and credentials need `https://`
 * (the etcd3 client would otherwise send them nowhere and speak plain text).
 */
export function checkEndpointSchemes(endpoints: string[], hasCredentials: boolean): void {
  const plain = endpoints.filter((e) => !e.startsWith('https://'));
  if (hasCredentials && plain.length > 0) {
    throw configError(
      'store.endpoints',
      `${plain.join(', ')}: etcd is reached over https:// when store.tls is set`,
    );
  }
  if (!hasCredentials && plain.length < endpoints.length) {
    throw configError(
      'store.tls',
      'https:// etcd endpoints need store.tls ({ca, cert, key}): etcd asks every client for a certificate',
    );
  }
}
