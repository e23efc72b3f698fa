/** `clusteradm mem cas ADDR EXPECTED DESIRED`: an atomic 64-bit compare-and-swap on network memory. */
import { type AdminOptions, adminOptions, defineCommand } from './context.ts';
import {
  describeTarget,
  type MemTarget,
  parseTarget,
  parseU64,
  targetFields,
  withNetworkMemory,
  wordAddress,
} from './mem-target.ts';
import { outputOption, toJson } from './output.ts';

export const memCas = defineCommand<AdminOptions, [MemTarget, bigint, bigint]>({
  words: ['mem', 'cas'],
  summary: 'compare-and-swap the 64-bit word at an 8-aligned address (little-endian)',
  configure(command) {
    command
      .argument('<target>', 'an 8-aligned global address or SEGMENT:OFFSET', parseTarget)
      .argument('<expected>', 'the value the word must hold (decimal or 0x hex)', parseU64)
      .argument('<desired>', 'the value to store if it does', parseU64)
      .addOption(outputOption());
    adminOptions(command);
  },
  async run(context, { args: [target, expected, desired], options }) {
    const result = await withNetworkMemory(context, options, async (session) =>
      session.memory.cas64(await wordAddress(session, target), expected, desired),
    );
    context.stdout(
      options.output === 'json'
        ? toJson({ ...targetFields(target), swapped: result.swapped, old: result.old.toString() })
        : `${result.swapped ? 'swapped' : 'not swapped'} at ${describeTarget(target)}: old value ${result.old}\n`,
    );
  },
});
