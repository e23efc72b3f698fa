/**
 * The agent's inventory is a set of small fingerprinters (STYLE 7): each reads
 * what it needs from the machine (through `FingerprintEnv`, so tests feed it
 * fixture text) and returns the facts it knows; `index.ts` registers them in
 * one list and merges their facts.
 */
import type { DeviceInventoryItem, LoadReport, NodeCapacity } from '../../api/contracts.ts';

/** What `stat` says about a path, as the device fingerprinter needs it. */
export interface PathStat {
  kind: 'file' | 'block' | 'char' | 'other';
  /** Bytes of a regular file (0 for a device: its size comes from sysfs). */
  size: number;
  /** Device number of a block or character device. */
  major: number;
  minor: number;
  /** The agent may open it for writing. */
  writable: boolean;
}

/** The devices part of the agent config (see config.ts). */
export interface DevicesConfig {
  /** Inventory every block device of `/sys/class/block` (default true). */
  block?: boolean;
  /** Character devices to list, by path (e.g. /dev/ttyUSB0); they are never exported. */
  char?: string[];
  /** Files, images or device nodes the admin declares as this machine's devices. */
  declared?: { name: string; path: string; readOnly?: boolean }[];
}

export interface FingerprintEnv {
  /** Reads a text file such as /proc/meminfo. */
  readText(path: string): Promise<string>;
  /** Bytes the node contributes when configured; undefined means RAM + swap. */
  contributeBytes?: number;
  /** The names in a directory (sysfs). */
  listDir?(path: string): Promise<string[]>;
  stat?(path: string): Promise<PathStat>;
  devices?: DevicesConfig;
}

export interface Facts {
  capacity?: Partial<NodeCapacity>;
  load?: Partial<LoadReport>;
  /** Devices of this machine; several fingerprinters' lists are concatenated. */
  devices?: DeviceInventoryItem[];
}

export interface Fingerprinter {
  name: string;
  probe(env: FingerprintEnv): Promise<Facts>;
}
