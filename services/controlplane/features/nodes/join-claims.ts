/**
 * The decision of one batch of joins, pure: for each join in order, the
 * token must still have a use left, the key must not be a removed node's,
 * then core's `decideClaims` claims the name and a range. The batch's CAS
 * (node-service.ts) reads the layout, the nodes, the tokens and the
 * tombstones and writes the new nodes, the layout and every token with its
 * spent uses at once: N + 5 joins racing for a token of N uses get exactly N
 * nodes, whatever the batching and whichever replica serves them.
 */

import { isTokenExpired } from '../../../core/bootstrap-token.ts';
import { AmalgamError } from '../../../core/errors.ts';
import type { MemoryLayout } from '../../../core/memory-layout.ts';
import { decideClaims, type NodeClaim } from '../../../core/nodes.ts';
import { spendTokenUse, type TokenRecord } from '../tokens/records.ts';
import type { NodeRecord, RevokedRecord } from './records.ts';

/** One join as the claim sees it: the node it asks for and the token it spends. */
export interface JoinClaim {
  claim: NodeClaim;
  tokenId: string;
}

export interface JoinState {
  layout: MemoryLayout;
  node(name: string): NodeRecord | undefined;
  token(id: string): TokenRecord | undefined;
  revoked(keyHash: string): RevokedRecord | undefined;
}

export type JoinOutcome =
  | { ok: true; node: NodeRecord; rejoined: boolean }
  | { ok: false; error: unknown };

export interface JoinDecision {
  layout: MemoryLayout;
  layoutChanged: boolean;
  created: NodeRecord[];
  /** Tokens whose use count changed, as they must be written. */
  spent: TokenRecord[];
  outcomes: JoinOutcome[];
}

/** CREDENTIAL_REVOKED when `keyHash` belonged to a node that was removed (and may still hold a certificate). */
export function refuseRevokedKey(tombstone: RevokedRecord | undefined, now: number): void {
  if (tombstone === undefined || now >= tombstone.expiresAt) return;
  throw new AmalgamError(
    'CREDENTIAL_REVOKED',
    `this key belonged to node ${tombstone.name}, removed at ${new Date(tombstone.removedAt).toISOString()}; join with a new key`,
    { field: 'csr' },
  );
}

function usableToken(state: JoinState, spent: Map<string, TokenRecord>, id: string, now: number) {
  const token = spent.get(id) ?? state.token(id);
  // Deleted or expired since the join authenticated: the claim has the last word.
  if (token === undefined) throw new AmalgamError('TOKEN_NOT_FOUND');
  if (isTokenExpired(token, now)) throw new AmalgamError('TOKEN_EXPIRED');
  return spendTokenUse(token);
}

export function decideJoins(
  state: JoinState,
  joins: readonly JoinClaim[],
  now: number,
): JoinDecision {
  let layout = state.layout;
  let layoutChanged = false;
  const created = new Map<string, NodeRecord>();
  const spent = new Map<string, TokenRecord>();
  const stored = (name: string) => created.get(name) ?? state.node(name);
  const outcomes = joins.map(({ claim, tokenId }): JoinOutcome => {
    let token: TokenRecord;
    try {
      refuseRevokedKey(state.revoked(claim.identity), now);
      token = usableToken(state, spent, tokenId, now);
    } catch (error) {
      return { ok: false, error };
    }
    // One claim at a time over what the batch decided so far: core's rules, in order.
    const decision = decideClaims(layout, stored, [claim], now);
    const outcome = decision.outcomes[0];
    if (outcome === undefined || !outcome.ok) return { ok: false, error: outcome?.error };
    layout = decision.layout;
    layoutChanged ||= decision.layoutChanged;
    for (const node of decision.created) created.set(node.name, node);
    spent.set(tokenId, token);
    return { ok: true, node: outcome.node, rejoined: outcome.rejoined };
  });
  return {
    layout,
    layoutChanged,
    created: [...created.values()],
    spent: [...spent.values()],
    outcomes,
  };
}
