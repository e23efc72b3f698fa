/**
 * Bootstrap tokens: `<id>.<secret>`, shown once at creation, stored only as a
 * salted hash of the secret. A join presents one; each failure has its own
 * code (malformed, unknown or deleted, expired, wrong secret).
 */
import { randomBytes } from 'node:crypto';
import type {
  Caller,
  ControlPlane,
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
import { requireAdmin } from '../../service/authz.ts';
import { keys } from '../../service/keys.ts';
import { putJson, readJson } from '../../service/optimistic.ts';

export const DEFAULT_TOKEN_TTL_SECONDS = 24 * 3600;
export const MAX_TOKEN_TTL_SECONDS = 30 * 24 * 3600;
const MAX_DESCRIPTION = 256;
const USAGES: readonly TokenUsage[] = ['join'];

/** The stored form: never the secret itself. */
export interface TokenRecord {
  id: string;
  secretHash: string;
  description: string;
  usages: TokenUsage[];
  createdAt: number;
  expiresAt: number;
}

function view(record: TokenRecord): TokenView {
  return {
    id: record.id,
    description: record.description,
    usages: record.usages,
    createdAt: new Date(record.createdAt).toISOString(),
    expiresAt: new Date(record.expiresAt).toISOString(),
  };
}

function validateCreate(request: CreateTokenRequest): Required<CreateTokenRequest> {
  const ttlSeconds = request.ttlSeconds ?? DEFAULT_TOKEN_TTL_SECONDS;
  if (!Number.isSafeInteger(ttlSeconds) || ttlSeconds < 1 || ttlSeconds > MAX_TOKEN_TTL_SECONDS) {
    throw new AmalgamError('INVALID_ARGUMENT', `ttlSeconds: 1 to ${MAX_TOKEN_TTL_SECONDS}`, {
      field: 'ttlSeconds',
    });
  }
  const description = request.description ?? '';
  if (typeof description !== 'string' || description.length > MAX_DESCRIPTION) {
    throw new AmalgamError(
      'INVALID_ARGUMENT',
      `description: at most ${MAX_DESCRIPTION} characters`,
      {
        field: 'description',
      },
    );
  }
  const usages = request.usages ?? ['join'];
  if (!Array.isArray(usages) || usages.length === 0 || !usages.every((u) => USAGES.includes(u))) {
    throw new AmalgamError('INVALID_ARGUMENT', `usages: a non-empty list of ${USAGES.join(', ')}`, {
      field: 'usages',
    });
  }
  return { ttlSeconds, description, usages: [...new Set(usages)] };
}

export function createTokenService(
  store: Store,
  now: () => number,
): ControlPlane['tokens'] & {
  authenticate(token: string, usage: TokenUsage): Promise<TokenRecord>;
} {
  return {
    async create(caller: Caller, request: CreateTokenRequest): Promise<CreatedToken> {
      requireAdmin(caller);
      const { ttlSeconds, description, usages } = validateCreate(request);
      for (;;) {
        const token = generateBootstrapToken((n) => randomBytes(n));
        const createdAt = now();
        const record: TokenRecord = {
          id: token.id,
          secretHash: hashTokenSecret(token.secret),
          description,
          usages,
          createdAt,
          expiresAt: tokenExpiresAt(createdAt, ttlSeconds),
        };
        // Ids are random; a collision (1 in 2e9 per pair) just draws again.
        const res = await store.txn({
          compares: [{ key: keys.token(token.id), target: 'version', op: '==', value: 0 }],
          onSuccess: [putJson(keys.token(token.id), record)],
        });
        if (res.succeeded) return { ...view(record), token: formatBootstrapToken(token) };
      }
    },

    async list(caller: Caller): Promise<TokenView[]> {
      requireAdmin(caller);
      const { kvs } = await store.range(keys.tokens);
      return kvs.map((kv) => view(JSON.parse(kv.value) as TokenRecord));
    },

    async delete(caller: Caller, id: string): Promise<void> {
      requireAdmin(caller);
      if (typeof id !== 'string' || !/^[a-z0-9]{6}$/.test(id)) {
        throw new AmalgamError('INVALID_ARGUMENT', 'id: 6 characters of [a-z0-9]', { field: 'id' });
      }
      const res = await store.txn({
        compares: [{ key: keys.token(id), target: 'version', op: '>', value: 0 }],
        onSuccess: [{ type: 'delete', key: keys.token(id) }],
      });
      if (!res.succeeded) throw new AmalgamError('NOT_FOUND', `token ${id}`, { field: 'id' });
    },

    async authenticate(text: string, usage: TokenUsage): Promise<TokenRecord> {
      const token = parseBootstrapToken(text);
      const record = await readJson<TokenRecord>(store, keys.token(token.id));
      if (!record) throw new AmalgamError('TOKEN_NOT_FOUND');
      if (isTokenExpired(record, now())) throw new AmalgamError('TOKEN_EXPIRED');
      if (!verifyTokenSecret(token.secret, record.secretHash))
        throw new AmalgamError('TOKEN_INVALID');
      if (!record.usages.includes(usage)) {
        throw new AmalgamError('FORBIDDEN', `the token is not valid for ${usage}`);
      }
      return record;
    },
  };
}
