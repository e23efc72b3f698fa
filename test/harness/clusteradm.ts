/**
 * clusteradm as the cluster's admin, in process: the admin credentials and an
 * admin.json (server URLs, files relative to it) written into a directory, and
 * a runner that passes `--config` to every command and captures its output.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runClusteradm } from '../../services/cli/main.ts';
import { captureContext } from '../unit/cli/cli-context.ts';
import type { ClusterdReplicas } from './clusterd.ts';

export interface ClusteradmResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Writes ca.crt, admin.crt, admin.key and admin.json into `dir`; clusteradm with that config. */
export function adminClusteradm(
  cd: ClusterdReplicas,
  dir: string,
): (...args: string[]) => Promise<ClusteradmResult> {
  const adminConfig = join(dir, 'admin.json');
  writeFileSync(join(dir, 'ca.crt'), cd.admin.ca);
  writeFileSync(join(dir, 'admin.crt'), cd.admin.cert);
  writeFileSync(join(dir, 'admin.key'), cd.admin.key, { mode: 0o600 });
  writeFileSync(
    adminConfig,
    JSON.stringify({
      server: cd.urls,
      caFile: 'ca.crt',
      certFile: 'admin.crt',
      keyFile: 'admin.key',
    }),
  );
  return async (...args) => {
    const { context, out } = captureContext({ cwd: dir, userHome: dir });
    const code = await runClusteradm([...args, '--config', adminConfig], context);
    return { code, ...out };
  };
}
