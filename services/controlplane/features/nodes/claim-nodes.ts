/**
 * The store side of join: one compare-and-swap per batch of joins (the
 * decisions themselves are join-claims.ts, pure).
 */
import { createMemoryLayout, type MemoryLayout } from '../../../core/memory-layout.ts';
import type { Mirror } from '../../../store/mirror.ts';
import type { Store } from '../../../store/store.ts';
import type { Outcome } from '../../service/batcher.ts';
import { putJson, updateAtomically } from '../../service/optimistic.ts';
import { memoryKeys } from '../memory/records.ts';
import { type TokenRecord, tokenKeys } from '../tokens/records.ts';
import { decideJoins, type JoinClaim } from './join-claims.ts';
import { type NodeRecord, nodeKeys, type RevokedRecord } from './records.ts';

export interface Claimed {
  node: NodeRecord;
  rejoined: boolean;
  layout: MemoryLayout;
}

/**
 * Claims a name and a range and spends a token use for every join of a batch
 * in ONE CAS over the layout and those nodes', tokens' and keys' records
 * (join-claims.ts `decideJoins`). Each join keeps its own outcome: one taken
 * name does not fail its neighbours.
 */
export function claimNodes(
  options: { store: Store; mirror: Mirror; now(): number },
  joins: readonly JoinClaim[],
): Promise<Outcome<Claimed>[]> {
  const unique = (list: string[]) => [...new Set(list)];
  const nodeKeysRead = unique(joins.map((j) => nodeKeys.node(j.claim.name)));
  const tokenKeysRead = unique(joins.map((j) => tokenKeys.token(j.tokenId)));
  const revokedRead = unique(joins.map((j) => nodeKeys.revokedKey(j.claim.identity)));
  return updateAtomically(
    options.store,
    [memoryKeys.layout, ...nodeKeysRead, ...tokenKeysRead, ...revokedRead],
    (current) => {
      const state = {
        layout: current.get<MemoryLayout>(memoryKeys.layout) ?? createMemoryLayout(),
        node: (name: string) => current.get<NodeRecord>(nodeKeys.node(name)),
        token: (id: string) => current.get<TokenRecord>(tokenKeys.token(id)),
        revoked: (hash: string) => current.get<RevokedRecord>(nodeKeys.revokedKey(hash)),
      };
      const decision = decideJoins(state, joins, options.now());
      const writes = decision.created.map((node) => putJson(nodeKeys.node(node.name), node));
      if (decision.layoutChanged) writes.push(putJson(memoryKeys.layout, decision.layout));
      for (const token of decision.spent) writes.push(putJson(tokenKeys.token(token.id), token));
      const result = decision.outcomes.map(
        (o): Outcome<Claimed> =>
          o.ok
            ? { ok: true, value: { node: o.node, rejoined: o.rejoined, layout: decision.layout } }
            : { ok: false, error: o.error },
      );
      return { writes, result };
    },
    { mirror: options.mirror },
  );
}
