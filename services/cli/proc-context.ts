/** The admin's process client for `run`, `ps`, `kill`, `logs`, `migrate`. */
import { createProcessClient, type ProcessClient } from '../client/process-client.ts';
import { loadAdminConfig, resolveAdminConfigPath } from './config.ts';
import type { CliContext } from './context.ts';

export async function withProcessClient<T>(
  context: CliContext,
  options: { config?: string | undefined; home?: string | undefined },
  fn: (client: ProcessClient, tls: { ca: string; cert: string; key: string }) => Promise<T>,
): Promise<T> {
  const loaded = await loadAdminConfig(resolveAdminConfigPath(options, context));
  const tls = { ca: loaded.ca, cert: loaded.cert, key: loaded.key };
  const client = createProcessClient({ endpoints: loaded.config.server, ...tls });
  try {
    return await fn(client, tls);
  } finally {
    await client.close();
  }
}
