/**
 * Whether a certificate the chain check accepted still speaks for anyone:
 * the doors (REST, gRPC unary and watch) call this right after working out
 * the Caller. A user certificate counts only while its record is live and
 * names the same key (features/users); anything else is CREDENTIAL_REVOKED.
 * Node certificates are checked against their node records the same way by
 * the node-revocation check (features/nodes), called beside this one.
 */
import { AmalgamError } from '../../core/errors.ts';
import type { Caller, UserApi } from './contracts.ts';

export function requireLiveCredential(
  users: Pick<UserApi, 'userCredentialState'>,
  caller: Caller,
): void {
  if (caller.kind !== 'user') return;
  const state = users.userCredentialState(caller.name, caller.keyHash);
  if (state === 'ok') return;
  throw new AmalgamError(
    'CREDENTIAL_REVOKED',
    state === 'revoked'
      ? `user ${caller.name} was revoked`
      : `user ${caller.name}: this key is not the one the cluster recorded`,
  );
}
