/**
 * The root of the control plane's keys in the store, and the keys that belong
 * to no feature. Each feature's `records.ts` names its own keys under
 * `STORE_ROOT` (features/nodes/records.ts, features/memory/records.ts, ...).
 */
export const STORE_ROOT = '/amalgam/v1';

export const keys = {
  /** Every key of the control plane (what its mirror watches). */
  root: `${STORE_ROOT}/`,
  /** The cluster's name and CA, recorded by the first replica. */
  cluster: `${STORE_ROOT}/cluster`,
  /** Controller leadership: the replica id, on the leader's lease. */
  leader: `${STORE_ROOT}/leader`,
} as const;

/** A store key as clients see it: relative to the control plane's root (`nodes/node-a`). */
export function relativeKey(key: string): string {
  return key.slice(keys.root.length);
}
