/**
 * `clusteradm mem lock TARGET [--ttl 30s] [--wait 10s]`: takes the lease lock
 * on an 8-aligned word (services/client/network-lock.ts) and prints its token,
 * alone on a line so `TOKEN=$(clusteradm mem lock ...)` works. The lease ends
 * after --ttl unless `mem unlock --token` frees it first; a lock still held by
 * another owner after --wait is LOCK_TIMEOUT (exit 1).
 */
import { Option } from 'commander';
import { NetworkLock } from '../client/network-lock.ts';
import { type AdminOptions, adminOptions, defineCommand } from './context.ts';
import {
  type MemTarget,
  parseTarget,
  targetFields,
  withNetworkMemory,
  wordAddress,
} from './mem-target.ts';
import { outputOption, toJson } from './output.ts';
import { parseDuration } from './units.ts';

interface Options extends AdminOptions {
  ttl: number;
  wait: number;
}

/** `0` (try once) or a duration. */
function parseWait(text: string): number {
  return text.trim() === '0' ? 0 : parseDuration(text);
}

export const memLock = defineCommand<Options, [MemTarget]>({
  words: ['mem', 'lock'],
  summary: 'take the lease lock on an 8-aligned word; prints its token',
  configure(command) {
    command
      .argument('<target>', 'an 8-aligned global address or SEGMENT:OFFSET', parseTarget)
      .addOption(
        new Option('--ttl <duration>', 'lease length: 30s, 5m (it expires unless unlocked first)')
          .argParser(parseDuration)
          .default(30, '30s'),
      )
      .addOption(
        new Option('--wait <duration>', 'how long to wait for another holder; 0 tries once')
          .argParser(parseWait)
          .default(10, '10s'),
      )
      .addOption(outputOption());
    adminOptions(command);
  },
  async run(context, { args: [target], options }) {
    const { token, expiry } = await withNetworkMemory(context, options, async (session) => {
      const lock = new NetworkLock(session.memory, await wordAddress(session, target));
      const { expiry } = await lock.acquire({
        ttlSeconds: options.ttl,
        timeoutMs: options.wait * 1000,
      });
      return { token: lock.token, expiry };
    });
    context.stdout(
      options.output === 'json'
        ? toJson({
            ...targetFields(target),
            token,
            expiresAt: new Date(expiry * 1000).toISOString(),
          })
        : `${token}\n`,
    );
  },
});
