/**
 * Bootstrap tokens in the store: one key per token id, holding a salted hash
 * of the secret (never the secret), and the codec (the only place a token
 * record is parsed). Tokens are never watchable.
 */
import type { TokenUsage, TokenView } from '../../../api/contracts.ts';
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
}

export function parseToken(raw: string): TokenRecord {
  return JSON.parse(raw) as TokenRecord;
}

export function toTokenView(record: TokenRecord): TokenView {
  return {
    id: record.id,
    description: record.description,
    usages: record.usages,
    createdAt: new Date(record.createdAt).toISOString(),
    expiresAt: new Date(record.expiresAt).toISOString(),
  };
}
