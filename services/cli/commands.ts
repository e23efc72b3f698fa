/**
 * Every clusteradm command, registered once. A command is one file per
 * noun-verb exporting a `CliCommand`; the words it declares place it in the
 * tree (`['token', 'create']` is `clusteradm token create`).
 */
import type { CliCommand } from './context.ts';
import { devDescribe } from './dev-describe.ts';
import { devExport } from './dev-export.ts';
import { devList } from './dev-list.ts';
import { devUnexport } from './dev-unexport.ts';
import { init } from './init.ts';
import { join } from './join.ts';
import { kill } from './kill.ts';
import { logs } from './logs.ts';
import { memAlloc } from './mem-alloc.ts';
import { memCas } from './mem-cas.ts';
import { memFree } from './mem-free.ts';
import { memLayout } from './mem-layout.ts';
import { memList } from './mem-list.ts';
import { memLock } from './mem-lock.ts';
import { memRead } from './mem-read.ts';
import { memRoutes } from './mem-routes.ts';
import { memUnlock } from './mem-unlock.ts';
import { memWrite } from './mem-write.ts';
import { migrate } from './migrate.ts';
import { nodeDescribe } from './node-describe.ts';
import { nodeDrain } from './node-drain.ts';
import { nodeRemove } from './node-remove.ts';
import { nodesList } from './nodes.ts';
import { ps } from './ps.ts';
import { run } from './run.ts';
import { tokenCreate } from './token-create.ts';
import { tokenDelete } from './token-delete.ts';
import { tokenList } from './token-list.ts';
import { userCreate } from './user-create.ts';
import { userList } from './user-list.ts';
import { userRevoke } from './user-revoke.ts';

export const COMMANDS: CliCommand[] = [
  init,
  join,
  tokenCreate,
  tokenList,
  tokenDelete,
  userCreate,
  userList,
  userRevoke,
  nodesList,
  nodeDescribe,
  nodeDrain,
  nodeRemove,
  memLayout,
  memRoutes,
  memAlloc,
  memFree,
  memList,
  memRead,
  memWrite,
  memCas,
  memLock,
  memUnlock,
  devList,
  devDescribe,
  devExport,
  devUnexport,
  run,
  ps,
  kill,
  logs,
  migrate,
];

/** What the nouns that only group verbs stand for, in `--help`. */
export const GROUPS: Record<string, string> = {
  token: 'bootstrap tokens for joining nodes',
  user: 'people and their roles (admin, operator, viewer)',
  node: 'one node of the cluster',
  mem: 'the network memory space',
  dev: 'the network device space (/remotedev/<node>/<dev>)',
};
