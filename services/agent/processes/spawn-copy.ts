/**
 * Starting one copy of a cluster process: whom it runs as (run-as.ts), its
 * directories owned accordingly (copy-dirs.ts), its environment, and its
 * fence shim (shim-copy.ts) with the lease deadline.
 */
import { randomUUID } from 'node:crypto';
import type { ProcessView } from '../../api/contracts.ts';
import type { ErrorCode } from '../../core/errors.ts';
import type { CopyDirs } from './copy-dirs.ts';
import type { ProcessAgentConfig } from './process-agent-config.ts';
import { DEFAULT_USER, decideRunAs, lookupUser, wantedUser } from './run-as.ts';
import { ShimCopy } from './shim-copy.ts';

export interface SpawnDeps {
  node: string;
  config: ProcessAgentConfig;
  dirs: CopyDirs;
  setpriv: string | null;
  /** The lease deadline now (CLOCK_MONOTONIC ms). */
  deadline: number;
  /** The shim reported the process's pid. */
  onPid(copy: ShimCopy, pid: number): void;
}

export type SpawnResult =
  | { ok: true; copy: ShimCopy; user: string }
  | { ok: false; code: ErrorCode; why: string };

export async function spawnCopy(view: ProcessView, deps: SpawnDeps): Promise<SpawnResult> {
  const { config, node, dirs } = deps;
  const policy = {
    defaultUser: config.defaultUser ?? DEFAULT_USER,
    allowRoot: config.allowRoot === true,
  };
  const name = wantedUser(view.user, policy);
  const agentUid = process.getuid?.() ?? 0;
  const decision = decideRunAs(name, await lookupUser(name), view.createdBy, policy, agentUid);
  if (!decision.ok) return decision;
  const { account } = decision;
  const { checkpoint, restore, work } = await dirs.prepare(view, account);
  const env: Record<string, string> = {
    ...(process.env as Record<string, string>),
    HOME: account.home,
    USER: account.name,
    LOGNAME: account.name,
    AMALGAM_CPID: String(view.cpid),
    AMALGAM_EPOCH: String(view.epoch),
    AMALGAM_NODE: node,
    AMALGAM_CHECKPOINT_DIR: checkpoint,
    ...(restore ? { AMALGAM_RESTORE_DIR: restore } : {}),
  };
  delete env.NODE_OPTIONS;
  const switchUser = agentUid === 0;
  const copy: ShimCopy = new ShimCopy(
    {
      command: view.command,
      args: view.args,
      env,
      cwd: work,
      logFile: dirs.logFile(view.cpid),
      intervalLog: config.intervalLog ?? null,
      cpid: view.cpid,
      epoch: view.epoch,
      node,
      copy: randomUUID(),
      deadline: deps.deadline,
      setpriv: deps.setpriv,
      runAs: switchUser ? { uid: account.uid, gid: account.gid, groups: account.groups } : null,
    },
    (pid) => deps.onPid(copy, pid),
  );
  return { ok: true, copy, user: account.name };
}
