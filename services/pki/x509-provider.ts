/**
 * The one place that loads `@peculiar/x509`. Every other file of this folder
 * imports the library from here, never directly, because two things must
 * happen before it is used:
 *
 * 1. `reflect-metadata` must be loaded first: the library resolves its
 *    algorithm providers through tsyringe, which throws at import time when
 *    `Reflect.getMetadata` is missing. The bare import below is evaluated
 *    before `@peculiar/x509` (ESM evaluates imports in source order).
 * 2. The library's crypto provider must be Node's WebCrypto. We also pass
 *    `webcrypto` explicitly to every call that takes one, so nothing depends on
 *    what another module may have registered.
 */
import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto);

/** Node's WebCrypto, the provider handed to every library call. */
export const webCrypto = webcrypto;

/** Every key is ECDSA P-256 and every signature ECDSA with SHA-256. */
export const EC_KEY_ALGORITHM: webcrypto.EcKeyGenParams = { name: 'ECDSA', namedCurve: 'P-256' };
export const SIGNING_ALGORITHM: webcrypto.EcdsaParams = { name: 'ECDSA', hash: 'SHA-256' };

export { x509 };
