/**
 * People and their roles. An admin creates a user from a CSR (the key stays
 * on the person's machine, as with join): one CAS claims the name and records
 * the key's hash, then the CA signs a client certificate CN `user:<name>`, O
 * the role's group. Revoking marks the record (it is never deleted), and
 * `userCredentialState` is what the doors ask before they believe a user
 * certificate: only the live record's own key is `ok`.
 */
import type { CreatedUser, CreateUserRequest, UserView } from '../../../api/contracts.ts';
import { AmalgamError } from '../../../core/errors.ts';
import { validateNodeName } from '../../../core/names.ts';
import {
  type ClusterCa,
  type CsrSigner,
  isUserRole,
  loadCsrSigner,
  userSubject,
} from '../../../pki/index.ts';
import type { Mirror } from '../../../store/mirror.ts';
import type { Store } from '../../../store/store.ts';
import { authorize } from '../../service/authz.ts';
import type { Caller, CredentialState, UserApi } from '../../service/contracts.ts';
import type { CredentialChecker } from '../../service/credentials.ts';
import { putJson, updateAtomically } from '../../service/optimistic.ts';
import { credentialStateOf, parseUser, toUserView, type UserRecord, userKeys } from './records.ts';

export const DEFAULT_USER_CERTIFICATE_DAYS = 365;

export interface UserServiceOptions {
  store: Store;
  mirror: Mirror;
  ca: ClusterCa;
  now: () => number;
  certificateValidityDays?: number;
}

function validateCreate(request: CreateUserRequest): void {
  validateNodeName(request.name, 'name');
  if (!isUserRole(request.role)) {
    throw new AmalgamError('INVALID_ARGUMENT', 'role: one of admin, operator, viewer', {
      field: 'role',
    });
  }
  if (typeof request.csr !== 'string' || request.csr.length === 0) {
    throw new AmalgamError('INVALID_ARGUMENT', 'csr: a PEM CSR is required', { field: 'csr' });
  }
}

export class UserService implements UserApi {
  readonly #options: UserServiceOptions;
  readonly #signer: Promise<CsrSigner>;

  constructor(options: UserServiceOptions) {
    this.#options = options;
    this.#signer = loadCsrSigner(options.ca);
    this.#signer.catch(() => {}); // surfaced on first use
  }

  async create(caller: Caller, request: CreateUserRequest): Promise<CreatedUser> {
    authorize(caller, 'createUser');
    validateCreate(request);
    const signer = await this.#signer;
    const csr = await signer.verify(request.csr);
    const { name, role } = request;
    const key = userKeys.user(name);
    const record: UserRecord = {
      name,
      role,
      identity: csr.publicKeyHash,
      createdAt: this.#options.now(),
    };
    await updateAtomically(this.#options.store, [key], (current) => {
      // Taken for good, revoked or not: a revoked name is never issued again.
      if (current.get<UserRecord>(key)) {
        throw new AmalgamError('NAME_TAKEN', `user ${name} exists`, { field: 'name' });
      }
      return { writes: [putJson(key, record)], result: undefined };
    });
    const certificate = await signer.issue(csr, {
      ...userSubject(name, role),
      usages: ['client'],
      validityDays: this.#options.certificateValidityDays ?? DEFAULT_USER_CERTIFICATE_DAYS,
    });
    return { user: toUserView(record), certificate, caCertificate: this.#options.ca.certPem };
  }

  async list(caller: Caller): Promise<UserView[]> {
    authorize(caller, 'listUsers');
    const { kvs } = await this.#options.store.range(userKeys.users);
    return kvs.map((kv) => toUserView(parseUser(kv.value)));
  }

  async revoke(caller: Caller, name: string): Promise<UserView> {
    authorize(caller, 'revokeUser');
    validateNodeName(name, 'name');
    const key = userKeys.user(name);
    const record = await updateAtomically(this.#options.store, [key], (current) => {
      const found = current.get<UserRecord>(key);
      if (!found) throw new AmalgamError('NOT_FOUND', `user ${name}`, { field: 'name' });
      if (found.revokedAt !== undefined) return { writes: [], result: found };
      const revoked: UserRecord = { ...found, revokedAt: this.#options.now() };
      return { writes: [putJson(key, revoked)], result: revoked };
    });
    return toUserView(record);
  }

  userCredentialState(name: string, keyHash: string | undefined): CredentialState {
    const kv = this.#options.mirror.get(userKeys.user(name));
    return credentialStateOf(kv ? parseUser(kv.value) : undefined, keyHash);
  }

  /** The users' checker for service/credentials.ts: only the live record's own key passes. */
  credentialChecker(): CredentialChecker {
    return (name, keyHash) => {
      const state = this.userCredentialState(name, keyHash);
      if (state === 'ok') return { valid: true };
      return {
        valid: false,
        reason: state === 'revoked' ? 'the user was revoked' : 'not the key the cluster recorded',
      };
    };
  }
}
