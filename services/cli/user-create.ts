/**
 * `clusteradm user create NAME --role R`: a credential for a person. The key
 * is made here and never leaves this machine; clusterd signs its CSR as CN
 * `user:NAME`, O the role's group. Written beside the admin configuration:
 * `<home>/users/NAME.json` in the admin configuration's format (server, CA,
 * certificate and key files), so `--config <that file>` acts as NAME.
 */
import { join } from 'node:path';
import { Option } from 'commander';
import type { UserRole } from '../api/contracts.ts';
import { createKeyAndCsr, USER_ROLES } from '../pki/index.ts';
import type { AdminConfig } from './config.ts';
import { resolveHome } from './config.ts';
import { type AdminOptions, adminOptions, defineCommand, withAdminClient } from './context.ts';
import { ensureDir, PRIVATE, PUBLIC, writeFileAtomic, writeJson } from './files.ts';
import { outputOption, toJson } from './output.ts';

interface Options extends AdminOptions {
  role: UserRole;
  dir?: string;
}

export const userCreate = defineCommand<Options, [string]>({
  words: ['user', 'create'],
  summary: 'create a user with a role and write their client configuration',
  configure(command) {
    command
      .argument('<name>', 'the user name (an RFC 1123 DNS label)')
      .addOption(
        new Option('--role <role>', 'what the user may do')
          .choices(USER_ROLES)
          .makeOptionMandatory(),
      )
      .option('--dir <dir>', 'where to write NAME.json, .key, .crt (default: <home>/users)')
      .addOption(outputOption());
    adminOptions(command);
  },
  async run(context, { args: [name], options }) {
    const dir = options.dir ?? join(resolveHome(options.home, context), 'users');
    const { keyPem, csrPem } = await createKeyAndCsr({ commonName: name });
    const { created, server } = await withAdminClient(context, options, async (client, server) => ({
      created: await client.users.create({ name, role: options.role, csr: csrPem }),
      server,
    }));
    await ensureDir(dir);
    const files = {
      keyFile: join(dir, `${name}.key`),
      certFile: join(dir, `${name}.crt`),
      caFile: join(dir, 'ca.crt'),
    };
    await writeFileAtomic(files.keyFile, keyPem, PRIVATE);
    await writeFileAtomic(files.certFile, created.certificate, PUBLIC);
    await writeFileAtomic(files.caFile, created.caCertificate, PUBLIC);
    const config: AdminConfig = { server, ...files };
    const path = join(dir, `${name}.json`);
    await writeJson(path, config, PRIVATE);
    context.stdout(
      options.output === 'json'
        ? toJson({ user: created.user, config: path })
        : `user ${name} (${options.role}) created; use it with --config ${path}\n`,
    );
  },
});
