/**
 * Users in the store: one key per name, binding it to a role and to the key
 * its certificate was issued for, and the codec (the only place a user record
 * is parsed). A revoked user keeps its record (revoked, with the time), so
 * the name is never issued again and its key stays refused. Users are not
 * watchable.
 */
import type { UserRole, UserView } from '../../../api/contracts.ts';
import type { CredentialState } from '../../service/contracts.ts';
import { STORE_ROOT } from '../../service/keys.ts';

export const userKeys = {
  users: `${STORE_ROOT}/users/`,
  user: (name: string) => `${STORE_ROOT}/users/${name}`,
} as const;

export interface UserRecord {
  name: string;
  role: UserRole;
  /** `sha256:<hex>` of the certificate's SubjectPublicKeyInfo. */
  identity: string;
  createdAt: number;
  /** Set once, by revoke; never cleared. */
  revokedAt?: number;
}

export function parseUser(raw: string): UserRecord {
  return JSON.parse(raw) as UserRecord;
}

export function toUserView(record: UserRecord): UserView {
  return {
    name: record.name,
    role: record.role,
    identity: record.identity,
    createdAt: new Date(record.createdAt).toISOString(),
    revoked: record.revokedAt !== undefined,
    revokedAt: record.revokedAt === undefined ? null : new Date(record.revokedAt).toISOString(),
  };
}

/** What a presented user certificate is worth: `ok` only for the live record's own key. */
export function credentialStateOf(
  record: UserRecord | undefined,
  keyHash: string | undefined,
): CredentialState {
  if (record === undefined || keyHash === undefined) return 'unknown';
  if (record.revokedAt !== undefined) return 'revoked';
  return record.identity === keyHash ? 'ok' : 'unknown';
}
