/** `clusteradm mem write ADDR|SEGMENT:OFFSET (--file F | --hex HEX | --data STRING)`. */
import { readFile } from 'node:fs/promises';
import { type AdminOptions, adminOptions, defineCommand } from './context.ts';
import { usageError } from './errors.ts';
import {
  describeTarget,
  type MemTarget,
  parseTarget,
  targetFields,
  withNetworkMemory,
} from './mem-target.ts';
import { outputOption, toJson } from './output.ts';

interface Options extends AdminOptions {
  file?: string;
  hex?: string;
  data?: string;
}

const HEX = /^([0-9a-f]{2})*$/i;

export const memWrite = defineCommand<Options, [MemTarget]>({
  words: ['mem', 'write'],
  summary: 'write bytes to network memory at a global address or a segment offset',
  configure(command) {
    command
      .argument(
        '<target>',
        'a global address (0x40000000) or SEGMENT:OFFSET (seg-1:4096)',
        parseTarget,
      )
      .option('--file <file>', "the bytes: this file's contents")
      .option('--hex <hex>', 'the bytes: hex digits, two per byte')
      .option('--data <string>', 'the bytes: this string as UTF-8')
      .addOption(outputOption());
    adminOptions(command);
  },
  async run(context, { args: [target], options }) {
    const sources = [options.file, options.hex, options.data].filter((s) => s !== undefined);
    if (sources.length !== 1)
      throw usageError('exactly one of --file, --hex or --data is required');
    if (options.hex !== undefined && !HEX.test(options.hex)) {
      throw usageError('--hex: an even number of hex digits is required');
    }
    const bytes =
      options.file !== undefined
        ? await readFile(options.file)
        : options.hex !== undefined
          ? Buffer.from(options.hex, 'hex')
          : Buffer.from(options.data ?? '', 'utf8');
    await withNetworkMemory(context, options, async (session) =>
      target.kind === 'address'
        ? session.memory.write(target.address, bytes)
        : session.memory.writeSegment(await session.segment(target.id), target.offset, bytes),
    );
    context.stdout(
      options.output === 'json'
        ? toJson({ ...targetFields(target), length: bytes.length })
        : `wrote ${bytes.length} bytes at ${describeTarget(target)}\n`,
    );
  },
});
