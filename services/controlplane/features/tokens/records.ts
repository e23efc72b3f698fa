/**
 * Bootstrap tokens in the store: one key per token id, holding a salted hash
 * of the secret (never the secret), its use count, and the codec (the only
 * place a token record is parsed). Tokens are never watchable.
 */
import type { TokenUsage, TokenView } from '../../../api/contracts.ts';
import { AmalgamError } from '../../../core/errors.ts';
import { STORE_ROOT } from '../../service/keys.ts';

export const tokenKeys = {
  tokens: `${STORE_ROOT}/tokens/`,
  token: (id: string) => `${STORE_ROOT}/tokens/${id}`,
} as const;

/** The stored form: never the secret itself. */
export interface TokenRecord {
  id: string;
  secretHash: string;
  description: string;
  usages: TokenUsage[];
  createdAt: number;
  expiresAt: number;
  /** Successful joins so far (absent in records written before use counting: 0). */
  uses?: number;
  /** Joins allowed; absent: any number until the token expires. */
  maxUses?: number;
}

export function parseToken(raw: string): TokenRecord {
  return JSON.parse(raw) as TokenRecord;
}

/** Whether every use the token allows is spent. */
export function isTokenExhausted(record: TokenRecord): boolean {
  return record.maxUses !== undefined && (record.uses ?? 0) >= record.maxUses;
}

/**
 * The record after one more successful join: what a join's claim writes in
 * the same compare-and-swap as the node (features/nodes/join-claims.ts), so
 * two joins never spend the same use. TOKEN_EXHAUSTED when none is left.
 */
export function spendTokenUse(record: TokenRecord): TokenRecord {
  if (isTokenExhausted(record)) {
    throw new AmalgamError(
      'TOKEN_EXHAUSTED',
      `token ${record.id} allowed ${record.maxUses} join(s); create another`,
      { maxUses: record.maxUses },
    );
  }
  return { ...record, uses: (record.uses ?? 0) + 1 };
}

export function toTokenView(record: TokenRecord): TokenView {
  return {
    id: record.id,
    description: record.description,
    usages: record.usages,
    createdAt: new Date(record.createdAt).toISOString(),
    expiresAt: new Date(record.expiresAt).toISOString(),
    uses: record.uses ?? 0,
    maxUses: record.maxUses ?? null,
  };
}
