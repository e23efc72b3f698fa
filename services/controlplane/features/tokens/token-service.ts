/**
 * Bootstrap tokens: `<id>.<secret>`, shown once at creation, stored only as a
 * salted hash of the secret. A join presents one; each failure has its own
 * code (malformed, unknown or deleted, expired, wrong secret). Long-expired
 * tokens are deleted by the token cleanup controller (`deleteExpired`).
 */
import { randomBytes } from 'node:crypto';
import type {
  CreatedToken,
  CreateTokenRequest,
  TokenUsage,
  TokenView,
} from '../../../api/contracts.ts';
import {
  formatBootstrapToken,
  generateBootstrapToken,
  isTokenExpired,
  parseBootstrapToken,
  tokenExpiresAt,
} from '../../../core/bootstrap-token.ts';
import { AmalgamError } from '../../../core/errors.ts';
import { hashTokenSecret, verifyTokenSecret } from '../../../pki/index.ts';
import type { Store } from '../../../store/store.ts';
import { authorize } from '../../service/authz.ts';
import type { Caller, TokenApi } from '../../service/contracts.ts';
import { putJson } from '../../service/optimistic.ts';
import { parseToken, type TokenRecord, tokenKeys, toTokenView } from './records.ts';

export const DEFAULT_TOKEN_TTL_SECONDS = 24 * 3600;
export const MAX_TOKEN_TTL_SECONDS = 30 * 24 * 3600;
/**
 * Expired tokens are kept this long: until then a join with one gets
 * TOKEN_EXPIRED rather than TOKEN_NOT_FOUND, which tells the operator what happened.
 */
export const EXPIRED_TOKEN_RETENTION_MS = 24 * 3600 * 1000;
const MAX_DESCRIPTION = 256;
const USAGES: readonly TokenUsage[] = ['join'];

function invalid(field: string, message: string): AmalgamError {
  return new AmalgamError('INVALID_ARGUMENT', `${field}: ${message}`, { field });
}

function validateCreate(request: CreateTokenRequest): Required<CreateTokenRequest> {
  const ttlSeconds = request.ttlSeconds ?? DEFAULT_TOKEN_TTL_SECONDS;
  if (!Number.isSafeInteger(ttlSeconds) || ttlSeconds < 1 || ttlSeconds > MAX_TOKEN_TTL_SECONDS) {
    throw invalid('ttlSeconds', `1 to ${MAX_TOKEN_TTL_SECONDS}`);
  }
  const description = request.description ?? '';
  if (typeof description !== 'string' || description.length > MAX_DESCRIPTION) {
    throw invalid('description', `at most ${MAX_DESCRIPTION} characters`);
  }
  const usages = request.usages ?? ['join'];
  if (!Array.isArray(usages) || usages.length === 0 || !usages.every((u) => USAGES.includes(u))) {
    throw invalid('usages', `a non-empty list of ${USAGES.join(', ')}`);
  }
  return { ttlSeconds, description, usages: [...new Set(usages)] };
}

export class TokenService implements TokenApi {
  readonly #store: Store;
  readonly #now: () => number;

  constructor(store: Store, now: () => number) {
    this.#store = store;
    this.#now = now;
  }

  async create(caller: Caller, request: CreateTokenRequest): Promise<CreatedToken> {
    authorize(caller, 'createToken');
    const { ttlSeconds, description, usages } = validateCreate(request);
    for (;;) {
      const token = generateBootstrapToken((n) => randomBytes(n));
      const createdAt = this.#now();
      const record: TokenRecord = {
        id: token.id,
        secretHash: hashTokenSecret(token.secret),
        description,
        usages,
        createdAt,
        expiresAt: tokenExpiresAt(createdAt, ttlSeconds),
      };
      // Ids are random; a collision (1 in 2e9 per pair) just draws again.
      const res = await this.#store.txn({
        compares: [{ key: tokenKeys.token(token.id), target: 'version', op: '==', value: 0 }],
        onSuccess: [putJson(tokenKeys.token(token.id), record)],
      });
      if (res.succeeded) return { ...toTokenView(record), token: formatBootstrapToken(token) };
    }
  }

  async list(caller: Caller): Promise<TokenView[]> {
    authorize(caller, 'listTokens');
    const { kvs } = await this.#store.range(tokenKeys.tokens);
    return kvs.map((kv) => toTokenView(parseToken(kv.value)));
  }

  async delete(caller: Caller, id: string): Promise<void> {
    authorize(caller, 'deleteToken');
    if (typeof id !== 'string' || !/^[a-z0-9]{6}$/.test(id)) {
      throw invalid('id', '6 characters of [a-z0-9]');
    }
    const res = await this.#store.txn({
      compares: [{ key: tokenKeys.token(id), target: 'version', op: '>', value: 0 }],
      onSuccess: [{ type: 'delete', key: tokenKeys.token(id) }],
    });
    if (!res.succeeded) throw new AmalgamError('NOT_FOUND', `token ${id}`, { field: 'id' });
  }

  /** The record of a valid token for `usage` (a join's proof); each failure has its own code. */
  async authenticate(text: string, usage: TokenUsage): Promise<TokenRecord> {
    const token = parseBootstrapToken(text);
    const kv = await this.#store.get(tokenKeys.token(token.id));
    if (!kv) throw new AmalgamError('TOKEN_NOT_FOUND');
    const record = parseToken(kv.value);
    if (isTokenExpired(record, this.#now())) throw new AmalgamError('TOKEN_EXPIRED');
    if (!verifyTokenSecret(token.secret, record.secretHash)) {
      throw new AmalgamError('TOKEN_INVALID');
    }
    if (!record.usages.includes(usage)) {
      throw new AmalgamError('FORBIDDEN', `the token is not valid for ${usage}`);
    }
    return record;
  }

  /**
   * Deletes every token expired for longer than EXPIRED_TOKEN_RETENTION_MS
   * (the token cleanup controller). Each delete is a CAS on the revision read,
   * so a token changed meanwhile is left for the next pass. Returns how many went.
   */
  async deleteExpired(): Promise<number> {
    const { kvs } = await this.#store.range(tokenKeys.tokens);
    let removed = 0;
    for (const kv of kvs) {
      const token = parseToken(kv.value);
      if (this.#now() < token.expiresAt + EXPIRED_TOKEN_RETENTION_MS) continue;
      const res = await this.#store.txn({
        compares: [{ key: kv.key, target: 'modRevision', op: '==', value: kv.modRevision }],
        onSuccess: [{ type: 'delete', key: kv.key }],
      });
      if (res.succeeded) removed++;
    }
    return removed;
  }
}
