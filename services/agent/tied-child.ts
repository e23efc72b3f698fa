/**
 * Children that must not outlive the agent (the page server, remotedev-fuse):
 * started through util-linux's `setpriv --pdeathsig TERM`, which execs the
 * binary in place (same pid) after asking the kernel to send SIGTERM when the
 * agent dies. Without setpriv they are plain children.
 *
 * A crashed agent cannot adopt an orphan (it does not know its port, and the
 * next agent starts its own), so an orphan would only hold memory, a port and
 * a mount that nobody publishes.
 */
import { type ChildProcess, type SpawnOptions, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';

export const SETPRIV: string | null =
  ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p)) ?? null;

export function spawnTiedToAgent(
  binary: string,
  args: string[],
  options: SpawnOptions,
): ChildProcess {
  return SETPRIV
    ? spawn(SETPRIV, ['--pdeathsig', 'TERM', '--', binary, ...args], options)
    : spawn(binary, args, options);
}
