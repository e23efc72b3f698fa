/**
 * The page server's `--peers` file, kept from the control plane: an Informer
 * of services/reconcile follows every node record (`nodes/`, a NodeView each,
 * re-listed every resync), each change enqueues one WorkQueue key that
 * renders the allowed set (peer-identities.ts), replaces the file atomically
 * when its content changed, and asks the page server to re-read it (SIGHUP:
 * a node removed, or joined again with a new key, loses its connections).
 *
 * Until the first list answers, the file allows this node's own key (read
 * from its certificate): the agent's health checks of its own page server
 * work from the start. When clusterd cannot be reached the file keeps its
 * last content: an outage of the control plane revokes no one.
 */
import { X509Certificate } from 'node:crypto';
import type { Logger } from 'pino';
import type { NodeView } from '../api/contracts.ts';
import type { AmalgamClient } from '../client/index.ts';
import { publicKeyHash } from '../pki/index.ts';
import { Informer, WorkQueue } from '../reconcile/index.ts';
import { writeAtomically } from './device-files-writer.ts';
import { PeerIdentities } from './peer-identities.ts';
import { watchKeys } from './watch-source.ts';

export interface PageServerPeersOptions {
  node: string;
  client: Pick<AmalgamClient, 'nodes' | 'watch'>;
  /** Where the file lives (the page server's `--peers`). */
  file: string;
  /** This node's certificate (PEM): its key is allowed before the first list. */
  certPem: string;
  resyncMs: number;
  logger: Logger;
  /** The file was rewritten: the page server should re-read it. */
  onChanged(): void;
}

/** `sha256:<hex>` of a certificate's SubjectPublicKeyInfo (as NodeRecord.identity). */
export function certificateKeyHash(certPem: string): string {
  const spki = new X509Certificate(certPem).publicKey.export({ type: 'spki', format: 'der' });
  return publicKeyHash(new Uint8Array(spki).buffer);
}

export class PageServerPeers {
  /** The allowed set, for other endpoints of this agent (`allows(commonName, keyHash)`). */
  readonly identities = new PeerIdentities();
  readonly file: string;
  readonly #o: PageServerPeersOptions;
  readonly #logger: Logger;
  readonly #nodes: Informer<NodeView>;
  readonly #queue: WorkQueue<'peers'>;
  #written = '';

  constructor(options: PageServerPeersOptions) {
    this.#o = options;
    this.file = options.file;
    this.#logger = options.logger.child({ part: 'peers' });
    this.#queue = new WorkQueue<'peers'>({
      name: 'page-server-peers',
      worker: () => this.#write(),
      logger: this.#logger,
    });
    const { client } = options;
    this.#nodes = new Informer<NodeView>({
      name: 'peers',
      source: {
        list: async () => ({
          items: (await client.nodes.list()).map((n) => [`nodes/${n.name}`, n] as const),
        }),
        watch: (from) => watchKeys(client, 'nodes/', (k) => k.startsWith('nodes/'), from),
      },
      onChange: () => this.#queue.add('peers'),
      // Only the name, state and key matter here (not load, heartbeats, labels).
      equals: (a, b) => a.state === b.state && a.identity === b.identity,
      resyncMs: options.resyncMs,
      baseDelayMs: 500,
      logger: this.#logger,
    });
  }

  /** Writes the file (this node's own key only) and starts following the node records. */
  async start(): Promise<void> {
    const own = certificateKeyHash(this.#o.certPem);
    this.identities.replace([{ name: this.#o.node, state: 'Ready', identity: own }]);
    this.#written = this.identities.render();
    await writeAtomically(this.file, this.#written);
    this.#nodes.start();
  }

  async close(): Promise<void> {
    await this.#nodes.close();
    await this.#queue.close();
  }

  async #write(): Promise<void> {
    this.identities.replace(this.#nodes.entries().map(([, node]) => node));
    const text = this.identities.render();
    if (text === this.#written) return;
    await writeAtomically(this.file, text);
    this.#written = text;
    this.#logger.info(
      { file: this.file, peers: this.identities.size },
      'page server peers changed',
    );
    this.#o.onChanged();
  }
}
