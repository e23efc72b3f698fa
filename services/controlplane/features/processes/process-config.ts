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
import { AmalgamError } from '../../../core/errors.ts';
import type { RebalancePolicy } from '../../../core/rebalance.ts';

export interface ProcessConfig {
  rebalance?: boolean;
  rebalanceIntervalMs?: number;
  policy?: Partial<RebalancePolicy>;
  fenceMarginSeconds?: number;
}

const KNOWN = [
  'rebalance',
  'rebalanceIntervalMs',
  'threshold',
  'cooldownSeconds',
  'minAgeSeconds',
  'maxMovesPerProcess',
  'maxMovesPerRound',
  'fenceMarginSeconds',
];

function number(value: unknown, field: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) {
    throw new AmalgamError(
      'INVALID_ARGUMENT',
      `processes.${field}: a number from ${min} to ${max}`,
      {
        field: `processes.${field}`,
      },
    );
  }
  return value;
}

export function parseProcessConfig(value: unknown): ProcessConfig {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new AmalgamError('INVALID_ARGUMENT', 'processes: an object is required', {
      field: 'processes',
    });
  }
  const v = value as Record<string, unknown>;
  for (const key of Object.keys(v)) {
    if (!KNOWN.includes(key)) {
      throw new AmalgamError('INVALID_ARGUMENT', `processes.${key}: not a known field`, {
        field: `processes.${key}`,
      });
    }
  }
  const config: ProcessConfig = {};
  const policy: Partial<RebalancePolicy> = {};
  if (v.rebalance !== undefined) {
    if (typeof v.rebalance !== 'boolean') {
      throw new AmalgamError('INVALID_ARGUMENT', 'processes.rebalance: true or false', {
        field: 'processes.rebalance',
      });
    }
    config.rebalance = v.rebalance;
  }
  if (v.rebalanceIntervalMs !== undefined)
    config.rebalanceIntervalMs = number(
      v.rebalanceIntervalMs,
      'rebalanceIntervalMs',
      50,
      3_600_000,
    );
  if (v.threshold !== undefined) policy.threshold = number(v.threshold, 'threshold', 0, 1000);
  if (v.cooldownSeconds !== undefined)
    policy.cooldownMs = 1000 * number(v.cooldownSeconds, 'cooldownSeconds', 0, 86_400);
  if (v.minAgeSeconds !== undefined)
    policy.minAgeMs = 1000 * number(v.minAgeSeconds, 'minAgeSeconds', 0, 86_400);
  if (v.maxMovesPerProcess !== undefined)
    policy.maxMovesPerProcess = number(v.maxMovesPerProcess, 'maxMovesPerProcess', 0, 1_000_000);
  if (v.maxMovesPerRound !== undefined)
    policy.maxMovesPerRound = number(v.maxMovesPerRound, 'maxMovesPerRound', 1, 10_000);
  if (v.fenceMarginSeconds !== undefined)
    config.fenceMarginSeconds = number(v.fenceMarginSeconds, 'fenceMarginSeconds', 0, 3600);
  if (Object.keys(policy).length > 0) config.policy = policy;
  return config;
}
