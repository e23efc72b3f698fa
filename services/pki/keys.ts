/**
 * ECDSA P-256 key pairs: generated with WebCrypto (what the library signs
 * with), exported as unencrypted PKCS#8 PEM (what Node's `tls` loads), and
 * loaded back from PEM (PKCS#8 or SEC1) for signing.
 */
import { createPrivateKey, createPublicKey, KeyObject, type webcrypto } from 'node:crypto';
import { AmalgamError } from '../core/errors.ts';
import { EC_KEY_ALGORITHM, webCrypto } from './x509-provider.ts';

/** OpenSSL's name for P-256, as Node reports it. */
const P256 = 'prime256v1';

export interface GeneratedKeyPair {
  keys: webcrypto.CryptoKeyPair;
  /** `-----BEGIN PRIVATE KEY-----` (PKCS#8, unencrypted). */
  keyPem: string;
}

export async function generateKeyPair(): Promise<GeneratedKeyPair> {
  const keys = await webCrypto.subtle.generateKey(EC_KEY_ALGORITHM, true, ['sign', 'verify']);
  const keyPem = KeyObject.from(keys.privateKey).export({ type: 'pkcs8', format: 'pem' });
  return { keys, keyPem: keyPem.toString() };
}

/** Node's view of a P-256 private key in PEM; INVALID_ARGUMENT for anything else. */
export function loadPrivateKey(keyPem: unknown, field: string): KeyObject {
  let key: KeyObject;
  try {
    if (typeof keyPem !== 'string') throw new TypeError('not a string');
    key = createPrivateKey({ key: keyPem, format: 'pem' });
  } catch (cause) {
    throw new AmalgamError(
      'INVALID_ARGUMENT',
      `${field}: not a PEM private key`,
      { field },
      {
        cause,
      },
    );
  }
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== P256) {
    throw new AmalgamError('INVALID_ARGUMENT', `${field}: an ECDSA P-256 key is required`, {
      field,
    });
  }
  return key;
}

/** A non-extractable WebCrypto signing key from a key loaded by `loadPrivateKey`. */
export async function toSigningKey(key: KeyObject): Promise<webcrypto.CryptoKey> {
  const der = key.export({ type: 'pkcs8', format: 'der' });
  return webCrypto.subtle.importKey('pkcs8', der, EC_KEY_ALGORITHM, false, ['sign']);
}

/** Whether a DER SubjectPublicKeyInfo holds an ECDSA P-256 public key. */
export function isP256PublicKey(spkiDer: ArrayBuffer): boolean {
  try {
    const key = createPublicKey({ key: Buffer.from(spkiDer), format: 'der', type: 'spki' });
    return key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === P256;
  } catch {
    return false;
  }
}

/** Whether `privateKey` is the private half of the DER SubjectPublicKeyInfo `spkiDer`. */
export function keyMatchesPublicKey(privateKey: KeyObject, spkiDer: ArrayBuffer): boolean {
  try {
    const publicKey = createPublicKey({ key: Buffer.from(spkiDer), format: 'der', type: 'spki' });
    return publicKey.equals(createPublicKey(privateKey));
  } catch {
    return false;
  }
}
