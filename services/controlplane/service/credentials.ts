/**
 * Bound credentials: a verified client certificate speaks for its subject
 * only while its key is still the one the cluster records for that subject.
 * Both doors (rest/identity.ts, grpc/caller.ts) call `verify` right after
 * they work out the Caller from the certificate, before anything else runs.
 *
 * One checker per kind of credential: `node` (features/nodes/
 * node-credentials.ts: the node record's `identity` from the control plane's
 * mirror, so a check costs no store round trip and follows a removal on every
 * replica within the mirror's watch delay); a `user` kind plugs in the same
 * way. A kind without a checker (the admin credential) is not revocable here.
 * A refusal is CREDENTIAL_REVOKED with a warn log line naming the subject and
 * the key hash's prefix.
 */
import type { Logger } from 'pino';
import { AmalgamError } from '../../core/errors.ts';
import type { Caller, CredentialVerifier } from './contracts.ts';

/** Whether a subject's key is still bound to it; `reason` says why not (logged and answered). */
export type CredentialVerdict = { valid: true } | { valid: false; reason: string };

/** Checks one kind of credential: is `keyHash` still the key of `name`? */
export type CredentialChecker = (
  name: string,
  keyHash: string,
) => CredentialVerdict | Promise<CredentialVerdict>;

/** Checkers by Caller kind (`node`, and `user` once users exist). */
export type CredentialCheckers = Readonly<Record<string, CredentialChecker>>;

/** How many characters of `sha256:<hex>` a log line shows: enough to find the node, not the whole key. */
const LOGGED_HASH_CHARS = 19;

export class Credentials implements CredentialVerifier {
  readonly #checkers: CredentialCheckers;
  readonly #logger: Logger;

  constructor(checkers: CredentialCheckers, logger: Logger) {
    this.#checkers = checkers;
    this.#logger = logger;
  }

  async verify(caller: Caller, keyHash: string | undefined): Promise<Caller> {
    const checker = Object.hasOwn(this.#checkers, caller.kind)
      ? this.#checkers[caller.kind]
      : undefined;
    if (checker === undefined) return caller;
    const name = 'name' in caller ? caller.name : caller.kind;
    const verdict: CredentialVerdict =
      keyHash === undefined
        ? { valid: false, reason: 'the certificate key could not be read' }
        : await checker(name, keyHash);
    if (verdict.valid) return caller;
    const subject = `${caller.kind}:${name}`;
    const keyPrefix = keyHash?.slice(0, LOGGED_HASH_CHARS);
    this.#logger.warn(
      { code: 'CREDENTIAL_REVOKED', subject, keyHash: keyPrefix, reason: verdict.reason },
      `credential revoked: ${subject} key ${keyPrefix} refused (${verdict.reason})`,
    );
    throw new AmalgamError('CREDENTIAL_REVOKED', `${subject}: ${verdict.reason}`, {
      subject,
      keyHash: keyPrefix,
    });
  }
}
