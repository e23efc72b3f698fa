/**
 * `clusteradm mem unlock TARGET --token T`: frees a lease lock taken by
 * `clusteradm mem lock`. A word that no longer holds T (never locked, already
 * unlocked, or expired and taken over) is LOCK_NOT_HELD (exit 1).
 */
import { NetworkLock } from '../client/network-lock.ts';
import { type AdminOptions, adminOptions, defineCommand } from './context.ts';
import {
  describeTarget,
  type MemTarget,
  parseTarget,
  targetFields,
  withNetworkMemory,
  wordAddress,
} from './mem-target.ts';
import { outputOption, toJson } from './output.ts';

interface Options extends AdminOptions {
  token: string;
}

export const memUnlock = defineCommand<Options, [MemTarget]>({
  words: ['mem', 'unlock'],
  summary: 'free a lease lock taken by `mem lock`',
  configure(command) {
    command
      .argument('<target>', 'the address or SEGMENT:OFFSET that was locked', parseTarget)
      .requiredOption('--token <token>', 'the token `mem lock` printed')
      .addOption(outputOption());
    adminOptions(command);
  },
  async run(context, { args: [target], options }) {
    await withNetworkMemory(context, options, async (session) => {
      const lock = new NetworkLock(session.memory, await wordAddress(session, target), {
        token: options.token,
      });
      await lock.release();
    });
    context.stdout(
      options.output === 'json'
        ? toJson({ ...targetFields(target), unlocked: true })
        : `unlocked ${describeTarget(target)}\n`,
    );
  },
});
