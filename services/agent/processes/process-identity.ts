/**
 * Which process a PID is. A PID read from a file (a copy recorded by an
 * earlier run of the agent) may name someone else's process by now: after a
 * reboot, or after the PID was reused. So what the agent records of a process
 * it started is its PID, its start time (field 22 of /proc/<pid>/stat, clock
 * ticks since boot) and the boot id (/proc/sys/kernel/random/boot_id); before
 * any kill of a recorded PID all three must match the process there now,
 * else it is not ours: log it and leave it alone.
 */
import { readFile } from 'node:fs/promises';

export interface ProcessIdentity {
  pid: number;
  /** Field 22 of /proc/<pid>/stat: start time in clock ticks after boot. */
  startTime: string;
  bootId: string;
}

/** What /proc says of a PID now. */
export interface ProcessNow {
  startTime: string;
  /** Field 3: R, S, D, Z (a zombie), ... */
  state: string;
}

/** Fields 3 and 22 of a /proc/<pid>/stat line (the command, field 2, may hold spaces and parens). */
export function parseStat(text: string): ProcessNow | null {
  const close = text.lastIndexOf(')');
  if (close < 0) return null;
  const rest = text
    .slice(close + 2)
    .trim()
    .split(/\s+/);
  // rest[0] is field 3 (state); field 22 is rest[19].
  const state = rest[0];
  const startTime = rest[19];
  if (!state || !startTime || !/^\d+$/.test(startTime)) return null;
  return { state, startTime };
}

export type KillDecision = { kill: true } | { kill: false; why: string };

/**
 * Pure: may the agent kill the process at `recorded.pid`? `now` is what /proc
 * shows at that PID (null: nothing), `bootId` this boot's id.
 */
export function decideKill(
  recorded: Partial<ProcessIdentity>,
  now: ProcessNow | null,
  bootId: string,
): KillDecision {
  if (!now || now.state === 'Z' || now.state === 'X') return { kill: false, why: 'not running' };
  if (!recorded.bootId || !recorded.startTime) {
    return { kill: false, why: 'recorded without start time and boot id: cannot tell it is ours' };
  }
  if (recorded.bootId !== bootId) return { kill: false, why: 'recorded in an earlier boot' };
  if (recorded.startTime !== now.startTime) {
    return { kill: false, why: 'another process has this pid now (start time differs)' };
  }
  return { kill: true };
}

let cachedBootId: string | null = null;

export async function currentBootId(): Promise<string> {
  cachedBootId ??= (await readFile('/proc/sys/kernel/random/boot_id', 'utf8')).trim();
  return cachedBootId;
}

export async function processNow(pid: number): Promise<ProcessNow | null> {
  if (!Number.isSafeInteger(pid) || pid <= 0) return null;
  try {
    return parseStat(await readFile(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return null;
  }
}

/** The identity of a running PID (null when it is gone). */
export async function identityOf(pid: number): Promise<ProcessIdentity | null> {
  const now = await processNow(pid);
  return now ? { pid, startTime: now.startTime, bootId: await currentBootId() } : null;
}

/** Whether the recorded process still runs (the same one, not a reuse of its PID). */
export async function stillRuns(recorded: Partial<ProcessIdentity>): Promise<boolean> {
  if (recorded.pid === undefined) return false;
  return decideKill(recorded, await processNow(recorded.pid), await currentBootId()).kill;
}

/**
 * SIGKILLs the recorded process only if it is the one recorded; answers what
 * was decided (the caller logs a refusal).
 */
export async function killIfOurs(recorded: Partial<ProcessIdentity>): Promise<KillDecision> {
  if (recorded.pid === undefined) return { kill: false, why: 'no pid recorded' };
  const decision = decideKill(recorded, await processNow(recorded.pid), await currentBootId());
  if (decision.kill) {
    try {
      process.kill(recorded.pid, 'SIGKILL');
    } catch {
      // gone meanwhile
    }
  }
  return decision;
}
