/** The `processes` section of the agent's config: how this node runs cluster processes. */
export interface ProcessAgentConfig {
  /** Where copies keep their checkpoint, restore directory and logs. */
  dataDir: string;
  /** CPUs this node offers to cluster processes (default: the machine's). */
  cpus?: number;
  /** CPU speed score reported for placement (default 1). */
  cpuSpeed?: number;
  /** Copies run at once; more wait as pending (default unlimited). */
  slots?: number;
  /** Lease per acknowledged heartbeat; must not exceed clusterd's nodeGraceSeconds. Default 10. */
  leaseSeconds?: number;
  /** The agent's process endpoint (checkpoints, logs; mutual TLS). Default 127.0.0.1:0. */
  listenHost?: string;
  listenPort?: number;
  /** Address published for other agents (default the bound one). */
  advertiseAddress?: string;
  /** Append an interval line per copy start and end here (tests). */
  intervalLog?: string;
  /** Process-load report period. Default 1000 ms. */
  reportMs?: number;
  /** How long a process has to write its checkpoint and exit. Default 10 s. */
  checkpointTimeoutMs?: number;
  /** Full re-list period. Default 3000 ms. */
  resyncMs?: number;
  /** Whom a process runs as when its request names no user. Default `nobody`. */
  defaultUser?: string;
  /** Whether an admin's process may run as root (uid 0). Default false. */
  allowRoot?: boolean;
  /** The largest checkpoint this agent receives (bytes). Default 256 MiB. */
  maxCheckpointBytes?: number;
}
