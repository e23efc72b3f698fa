/**
 * The joining machine's key and CSR. The key is made here and never leaves
 * the machine; it is kept in `<node home>/node.key`, and a later join reuses
 * it, so the control plane sees the same identity (the SPKI hash) and gives
 * the node back its range.
 */
import { createPrivateKey, createPublicKey, type KeyObject, X509Certificate } from 'node:crypto';
import { createKeyAndCsr, NODE_COMMON_NAME_PREFIX } from '../pki/index.ts';
import { CliError } from './errors.ts';

export interface NodeKey {
  keyPem: string;
  csrPem: string;
  /** False when `existingKeyPem` was used. */
  created: boolean;
}

export async function nodeKeyAndCsr(
  name: string,
  existingKeyPem: string | undefined,
): Promise<NodeKey> {
  const commonName = `${NODE_COMMON_NAME_PREFIX}${name}`;
  if (existingKeyPem === undefined) {
    const { keyPem, csrPem } = await createKeyAndCsr({ commonName });
    return { keyPem, csrPem, created: true };
  }
  return {
    keyPem: existingKeyPem,
    csrPem: await csrForKey(existingKeyPem, commonName),
    created: false,
  };
}

function loadP256(keyPem: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: keyPem, format: 'pem' });
  } catch (err) {
    throw new CliError('NODE_KEY_INVALID', `not a PEM private key (${(err as Error).message})`);
  }
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    throw new CliError('NODE_KEY_INVALID', 'an ECDSA P-256 key is required');
  }
  return key;
}

/** A CSR signed by an existing P-256 key. */
export async function csrForKey(keyPem: string, commonName: string): Promise<string> {
  loadP256(keyPem); // a clear NODE_KEY_INVALID before the PKI library's generic error
  return (await createKeyAndCsr({ commonName, keyPem })).csrPem;
}

/** Whether the certificate `certPem` is for the key `keyPem`. */
export function certificateMatchesKey(certPem: string, keyPem: string): boolean {
  try {
    return new X509Certificate(certPem).publicKey.equals(createPublicKey(keyPem));
  } catch {
    return false;
  }
}
