/**
 * The `processes` block of clusterd's config (all optional):
 *   rebalance            run the rebalancer on the leader (default true)
 *   rebalanceIntervalMs  between passes (default 2000)
 *   threshold            pressure gap a move must close by more than (default 0.5)
 *   cooldownSeconds      a process does not move again within this (default 10)
 *   minAgeSeconds        a running process moves only after running this long (default 1)
 *   maxMovesPerProcess   in its life (default 2)
 *   maxMovesPerRound     per pass (default 4)
 *   fenceMarginSeconds   a target takes over from a source without a lease only after
 *                        seeing it gone this long (default 2)
 */
import type { RebalancePolicy } from '../../../core/rebalance.ts';

export interface ProcessConfig {
  rebalance?: boolean;
  rebalanceIntervalMs?: number;
  policy?: Partial<RebalancePolicy>;
  fenceMarginSeconds?: number;
}

/** The block as the file says it (checked by PROCESS_CONFIG_SCHEMA, config-schema.ts). */
export interface ProcessConfigFile {
  rebalance?: boolean;
  rebalanceIntervalMs?: number;
  threshold?: number;
  cooldownSeconds?: number;
  minAgeSeconds?: number;
  maxMovesPerProcess?: number;
  maxMovesPerRound?: number;
  fenceMarginSeconds?: number;
}

/** The checked block as the process feature uses it: the rebalance policy in milliseconds. */
export function processConfigFrom(file: ProcessConfigFile): ProcessConfig {
  const config: ProcessConfig = {};
  if (file.rebalance !== undefined) config.rebalance = file.rebalance;
  if (file.rebalanceIntervalMs !== undefined) config.rebalanceIntervalMs = file.rebalanceIntervalMs;
  if (file.fenceMarginSeconds !== undefined) config.fenceMarginSeconds = file.fenceMarginSeconds;
  const policy: Partial<RebalancePolicy> = {};
  if (file.threshold !== undefined) policy.threshold = file.threshold;
  if (file.cooldownSeconds !== undefined) policy.cooldownMs = 1000 * file.cooldownSeconds;
  if (file.minAgeSeconds !== undefined) policy.minAgeMs = 1000 * file.minAgeSeconds;
  if (file.maxMovesPerProcess !== undefined) policy.maxMovesPerProcess = file.maxMovesPerProcess;
  if (file.maxMovesPerRound !== undefined) policy.maxMovesPerRound = file.maxMovesPerRound;
  if (Object.keys(policy).length > 0) config.policy = policy;
  return config;
}
