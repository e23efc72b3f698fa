/**
 * Bootstrap tokens: `<id>.<secret>`, shown once at creation, stored only as a
 * salted hash of the secret. A join presents one; each failure has its own
 * code (malformed, unknown or deleted, expired, wrong secret, used up). A
 * token allows `maxUses` joins (default: any number until it expires, as
 * kubeadm's bootstrap tokens); the join's claim spends one in its own CAS
 * (features/nodes/join-claims.ts). Long-expired tokens are deleted by the
 * token cleanup controller (`deleteExpired`). Every write is a CAS through
 * service/optimistic.ts.
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
import { putJson, updateAtomically } from '../../service/optimistic.ts';
import {
  isTokenExhausted,
  parseToken,
  type TokenRecord,
  tokenKeys,
  toTokenView,
} from './records.ts';

export const DEFAULT_TOKEN_TTL_SECONDS = 24 * 3600;
export const MAX_TOKEN_TTL_SECONDS = 30 * 24 * 3600;
/**
 * Expired tokens are kept this long: until then a join with one gets
 * TOKEN_EXPIRED rather than TOKEN_NOT_FOUND, which tells the operator what happened.
 */
export const EXPIRED_TOKEN_RETENTION_MS = 24 * 3600 * 1000;
const MAX_DESCRIPTION = 256;
const MAX_USES = 1_000_000;
const USAGES: readonly TokenUsage[] = ['join'];

function invalid(field: string, message: string): AmalgamError {
  return new AmalgamError('INVALID_ARGUMENT', `${field}: ${message}`, { field });
}

interface ValidCreate {
  ttlSeconds: number;
  description: string;
  usages: TokenUsage[];
  maxUses: number | undefined;
}

function validateCreate(request: CreateTokenRequest): ValidCreate {
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
  const { maxUses } = request;
  if (
    maxUses !== undefined &&
    (!Number.isSafeInteger(maxUses) || maxUses < 1 || maxUses > MAX_USES)
  ) {
    throw invalid('maxUses', `1 to ${MAX_USES}`);
  }
  return { ttlSeconds, description, usages: [...new Set(usages)], maxUses };
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
    const { ttlSeconds, description, usages, maxUses } = validateCreate(request);
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
        uses: 0,
        ...(maxUses === undefined ? {} : { maxUses }),
      };
      const key = tokenKeys.token(token.id);
      // Ids are random; a collision (1 in 2e9 per pair) just draws again.
      const created = await updateAtomically(this.#store, [key], (current) =>
        current.get<TokenRecord>(key) === undefined
          ? { writes: [putJson(key, record)], result: true }
          : { writes: [], result: false },
      );
      if (created) return { ...toTokenView(record), token: formatBootstrapToken(token) };
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
    const key = tokenKeys.token(id);
    await updateAtomically(this.#store, [key], (current) => {
      if (current.get<TokenRecord>(key) === undefined) {
        throw new AmalgamError('NOT_FOUND', `token ${id}`, { field: 'id' });
      }
      return { writes: [{ type: 'delete', key }], result: undefined };
    });
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
    // Early answer only: the join's claim spends the use by CAS and checks again.
    if (isTokenExhausted(record)) {
      throw new AmalgamError('TOKEN_EXHAUSTED', `token ${record.id} allowed ${record.maxUses}`);
    }
    return record;
  }

  /**
   * Deletes every token expired for longer than EXPIRED_TOKEN_RETENTION_MS
   * (the token cleanup controller). Each delete is a CAS that decides again on
   * the token as it reads it. Returns how many went.
   */
  async deleteExpired(): Promise<number> {
    const { kvs } = await this.#store.range(tokenKeys.tokens);
    const due = (token: TokenRecord | undefined) =>
      token !== undefined && this.#now() >= token.expiresAt + EXPIRED_TOKEN_RETENTION_MS;
    let removed = 0;
    for (const kv of kvs) {
      if (!due(parseToken(kv.value))) continue;
      // Decided again on what the CAS reads: a token changed meanwhile is judged anew.
      const deleted = await updateAtomically(this.#store, [kv.key], (current) =>
        due(current.get<TokenRecord>(kv.key))
          ? { writes: [{ type: 'delete', key: kv.key }], result: true }
          : { writes: [], result: false },
      );
      if (deleted) removed++;
    }
    return removed;
  }
}
