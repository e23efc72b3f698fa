/**
 * Node identities for tests and benchmarks that talk mutual TLS to native
 * parts (page server, netmem, remotedev-fuse): a node certificate signed by a
 * cluster CA exactly as join would issue it, and its PEM files in a temp dir.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type ClusterCa, createKeyAndCsr, signCsr } from '../../services/pki/index.ts';

/** A certificate and its key: PEM text (nodeCertificate) or file paths (nodeCertificateFiles). */
export interface NodeIdentity {
  cert: string;
  key: string;
}

/** `node:<name>` in `amalgam:nodes`, client and server usage, valid one day; PEM text. */
export async function nodeCertificate(ca: ClusterCa, name: string): Promise<NodeIdentity> {
  const commonName = `node:${name}`;
  const { keyPem, csrPem } = await createKeyAndCsr({ commonName, dnsNames: [name] });
  const cert = await signCsr(ca, csrPem, {
    commonName,
    organization: 'amalgam:nodes',
    dnsNames: [name],
    usages: ['client', 'server'],
    validityDays: 1,
  });
  return { cert, key: keyPem };
}

/** Writes `text` to `dir/name` readable by the owner only; returns the path. */
export function writePrivateFile(dir: string, name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text, { mode: 0o600 });
  return path;
}

/** A node certificate for `name` written as `dir/<file>.crt` and `dir/<file>.key`; the paths. */
export async function nodeCertificateFiles(
  ca: ClusterCa,
  name: string,
  dir: string,
  file = name,
): Promise<NodeIdentity> {
  const id = await nodeCertificate(ca, name);
  return {
    cert: writePrivateFile(dir, `${file}.crt`, id.cert),
    key: writePrivateFile(dir, `${file}.key`, id.key),
  };
}
