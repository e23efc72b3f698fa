/**
 * Whom a copy runs as. A process runs as the user its request named, else the
 * node's `processes.defaultUser` (default `nobody`), with that user's uid, gid
 * and supplementary groups from the node's passwd and group databases (NSS,
 * through getent and id). Root (uid 0, whatever the name) only when the node
 * allows it (`processes.allowRoot`) AND an admin created the process: the
 * control plane records the creator's role (`createdBy`). A refusal is a
 * failure of the process with a stable code, never a crash of the agent.
 */
import { execFile } from 'node:child_process';
import type { ErrorCode } from '../../core/errors.ts';

export interface UserAccount {
  name: string;
  uid: number;
  gid: number;
  /** Supplementary groups (the primary one included when the database lists it). */
  groups: number[];
  home: string;
}

export type RunAsDecision =
  | { ok: true; account: UserAccount }
  | { ok: false; code: ErrorCode; why: string };

export interface RunAsPolicy {
  defaultUser: string;
  allowRoot: boolean;
}

export const DEFAULT_USER = 'nobody';

/** The user name a process asks for (its request's `user`, else the node's default). */
export const wantedUser = (requested: string | undefined | null, policy: RunAsPolicy): string =>
  requested ?? policy.defaultUser;

/** Pure: may the process run as `account` (null: no such user on this node)? */
export function decideRunAs(
  name: string,
  account: UserAccount | null,
  createdBy: string | undefined | null,
  policy: RunAsPolicy,
  agentUid = 0,
): RunAsDecision {
  if (!account) {
    return { ok: false, code: 'USER_UNKNOWN', why: `no user ${JSON.stringify(name)} on this node` };
  }
  if (agentUid !== 0 && account.uid !== agentUid) {
    return {
      ok: false,
      code: 'USER_UNKNOWN',
      why: `this agent runs as uid ${agentUid}, not root: it cannot run a process as ${name}`,
    };
  }
  if (account.uid !== 0) return { ok: true, account };
  if (!policy.allowRoot) {
    return {
      ok: false,
      code: 'ROOT_NOT_ALLOWED',
      why: `user ${name} is root and this node does not allow root (processes.allowRoot)`,
    };
  }
  if (createdBy !== 'admin') {
    return {
      ok: false,
      code: 'ROOT_NOT_ALLOWED',
      why: `user ${name} is root and the process was not created by an admin (${createdBy ?? 'unknown'})`,
    };
  }
  return { ok: true, account };
}

const run = (file: string, args: string[]) =>
  new Promise<string | null>((resolve) =>
    execFile(file, args, { timeout: 10_000 }, (err, stdout) => resolve(err ? null : stdout)),
  );

const USER_NAME = /^[a-z_][a-z0-9_.-]{0,31}\$?$/i;

/** The account of `name` from the node's databases, or null when there is none. */
export async function lookupUser(name: string): Promise<UserAccount | null> {
  if (!USER_NAME.test(name)) return null;
  const line = await run('getent', ['passwd', name]);
  const fields = line?.trim().split('\n')[0]?.split(':');
  if (!fields || fields.length < 7 || fields[0] !== name) return null;
  const uid = Number(fields[2]);
  const gid = Number(fields[3]);
  if (!Number.isSafeInteger(uid) || !Number.isSafeInteger(gid)) return null;
  const ids = (await run('id', ['-G', name]))?.trim().split(/\s+/).map(Number) ?? [gid];
  const groups = [...new Set(ids.filter((g) => Number.isSafeInteger(g) && g >= 0))];
  return { name, uid, gid, groups, home: fields[5] ?? '/' };
}

/**
 * setpriv's arguments for running as `account` (before `--pdeathsig`, which
 * setpriv applies after changing the ids, so the process still dies with its shim).
 */
export function setprivIdentity(account: UserAccount): string[] {
  return [
    `--reuid=${account.uid}`,
    `--regid=${account.gid}`,
    account.groups.length > 0 ? `--groups=${account.groups.join(',')}` : '--clear-groups',
  ];
}
