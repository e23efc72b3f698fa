/**
 * The nodes this machine's data-plane endpoints serve: every node record the
 * control plane lists that is not Removed, with its key (`NodeRecord.identity`,
 * `sha256:<hex>` of the SubjectPublicKeyInfo). A certificate is a node's only
 * while its key is the one recorded: a removed node, or an old key after its
 * name was joined again, is no longer allowed.
 *
 * Pure (no I/O): the agent feeds it from a watch of `nodes/`
 * (page-server-peers.ts), the page server reads the rendered file
 * (`--peers`, native/pageserver/peers.h), and other endpoints of the agent
 * ask `allows(commonName, keyHash)`. The admin credential (CN `admin`, O
 * `amalgam:admins`) is not a node and is not in this set: a caller that also
 * serves the admin checks its subject itself.
 */
import type { NodeView } from '../api/contracts.ts';

const NODE_CN = /^node:([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)$/;
const KEY_HASH = /^sha256:[0-9a-f]{64}$/;

export class PeerIdentities {
  /** node name -> its recorded key hash. */
  readonly #keys = new Map<string, string>();

  /** The allowed set becomes exactly these nodes (Removed ones and malformed identities left out). */
  replace(nodes: Iterable<Pick<NodeView, 'name' | 'state' | 'identity'>>): void {
    this.#keys.clear();
    for (const n of nodes) {
      if (n.state !== 'Removed' && KEY_HASH.test(n.identity)) this.#keys.set(n.name, n.identity);
    }
  }

  /** True only for `node:<name>` presenting exactly the key the control plane recorded for it. */
  allows(commonName: string, keyHash: string): boolean {
    const name = NODE_CN.exec(commonName)?.[1];
    return name !== undefined && this.#keys.get(name) === keyHash;
  }

  get size(): number {
    return this.#keys.size;
  }

  /** The page server's `--peers` file: `node:<name> sha256:<hex>` a line, sorted by name. */
  render(): string {
    const lines = [...this.#keys.entries()]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([name, hash]) => `node:${name} ${hash}\n`);
    return `# pageserver --peers: written by clusteragent from the control plane; do not edit\n${lines.join('')}`;
  }
}
