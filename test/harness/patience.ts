/**
 * How long a test waits before it calls something hung. A wait in a test is a
 * guard against a hang, never a statement about speed: on a loaded 2-core
 * machine a clusterd that starts in 2 s when quiet can take a minute. Every
 * harness deadline goes through `patient(ms)`: the quiet-machine figure times
 * AMALGAM_TEST_PATIENCE (default 3), and more while the machine is overloaded
 * (load average per core above 1 at the time the wait starts).
 */
import { availableParallelism, loadavg } from 'node:os';

const BASE = Number(process.env.AMALGAM_TEST_PATIENCE ?? 3) || 3;

export function patience(): number {
  const overload = (loadavg()[0] ?? 0) / Math.max(1, availableParallelism());
  return BASE * Math.min(4, Math.max(1, overload / 2));
}

/** `ms` as a deadline for waiting on a condition on this machine, now. */
export function patient(ms: number): number {
  return Math.round(ms * patience());
}
