/**
 * The agent's inventory is a set of small fingerprinters (STYLE 7): each reads
 * what it needs from the machine (through `FingerprintEnv`, so tests feed it
 * fixture text) and returns the facts it knows; `index.ts` registers them in
 * one list and merges their facts.
 */
import type { LoadReport, NodeCapacity } from '../../controlplane/service/contracts.ts';

export interface FingerprintEnv {
  /** Reads a text file such as /proc/meminfo. */
  readText(path: string): Promise<string>;
  /** Bytes the node contributes when configured; undefined means RAM + swap. */
  contributeBytes?: number;
}

export interface Facts {
  capacity?: Partial<NodeCapacity>;
  load?: Partial<LoadReport>;
}

export interface Fingerprinter {
  name: string;
  probe(env: FingerprintEnv): Promise<Facts>;
}
