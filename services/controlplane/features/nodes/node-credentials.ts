/**
 * The `node` credential checker (service/credentials.ts): a node certificate
 * holds while the node record of its name exists, is not Removed, and records
 * the certificate's key as its `identity`.
 *
 * Read from the control plane's mirror (a watch of the store), so the check
 * costs no store round trip and a removal reaches every replica within the
 * mirror's watch delay. Only a refusal first syncs the mirror (one small
 * quorum read): a node that just joined through another replica is then seen,
 * and a refusal is always decided on everything committed before it. A
 * refusal decided so is final (a removed key can never join again while its
 * tombstone lasts, records.ts), so it is remembered and a revoked
 * certificate's flood costs no quorum read per call.
 */
import type { Mirror } from '../../../store/mirror.ts';
import type { CredentialChecker, CredentialVerdict } from '../../service/credentials.ts';
import { type NodeRecord, nodeKeys, parseNode } from './records.ts';

const MAX_REMEMBERED = 4096;
const VALID: CredentialVerdict = Object.freeze({ valid: true });

export function verdictFor(node: NodeRecord | undefined, keyHash: string): CredentialVerdict {
  if (node === undefined) return { valid: false, reason: 'the node was removed' };
  if (node.state === 'Removed') return { valid: false, reason: 'the node was removed' };
  if (node.identity !== keyHash) {
    return { valid: false, reason: 'the node name now belongs to another key' };
  }
  return VALID;
}

export function nodeCredentialChecker(mirror: Mirror): CredentialChecker {
  /** Parsed records by name, valid while their modRevision is the mirror's. */
  const parsed = new Map<string, { modRevision: number; node: NodeRecord }>();
  const refused = new Map<string, CredentialVerdict>();
  const current = (name: string): NodeRecord | undefined => {
    const kv = mirror.get(nodeKeys.node(name));
    if (kv === undefined) {
      parsed.delete(name);
      return undefined;
    }
    const hit = parsed.get(name);
    if (hit?.modRevision === kv.modRevision) return hit.node;
    const node = parseNode(kv.value);
    parsed.set(name, { modRevision: kv.modRevision, node });
    return node;
  };
  return async (name, keyHash) => {
    const fast = verdictFor(current(name), keyHash);
    if (fast.valid) return fast;
    const pair = `${name} ${keyHash}`;
    const known = refused.get(pair);
    if (known !== undefined) return known;
    await mirror.sync();
    const verdict = verdictFor(current(name), keyHash);
    if (!verdict.valid) {
      if (refused.size >= MAX_REMEMBERED) refused.delete(refused.keys().next().value as string);
      refused.set(pair, verdict);
    }
    return verdict;
  };
}
