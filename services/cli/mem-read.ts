/** `clusteradm mem read ADDR|SEGMENT:OFFSET LEN`: bytes of network memory, from whichever node holds them. */
import { writeFile } from 'node:fs/promises';
import { InvalidArgumentError } from 'commander';
import { type AdminOptions, adminOptions, defineCommand } from './context.ts';
import {
  describeTarget,
  type MemTarget,
  parseTarget,
  targetFields,
  withNetworkMemory,
} from './mem-target.ts';
import { outputOption, toJson } from './output.ts';
import { parseSize } from './units.ts';

interface Options extends AdminOptions {
  file?: string;
  hex?: boolean;
}

/** At most this much is read by one command (the bytes are held in memory). */
const MAX_READ = 1024 * 1024 * 1024;

export const memRead = defineCommand<Options, [MemTarget, number]>({
  words: ['mem', 'read'],
  summary: 'read bytes of network memory at a global address or a segment offset',
  configure(command) {
    command
      .argument(
        '<target>',
        'a global address (0x40000000) or SEGMENT:OFFSET (seg-1:4096)',
        parseTarget,
      )
      .argument('<length>', 'bytes: 4096, 64Ki, 1Mi', (text: string) => {
        const length = parseSize(text);
        if (length > MAX_READ) throw new InvalidArgumentError('at most 1Gi per read');
        return length;
      })
      .option('--file <file>', 'write the bytes to this file')
      .option('--hex', 'print the bytes as hex (default: as UTF-8 text)')
      .addOption(outputOption());
    adminOptions(command);
  },
  async run(context, { args: [target, length], options }) {
    const bytes = await withNetworkMemory(context, options, async (session) =>
      target.kind === 'address'
        ? session.memory.read(target.address, length)
        : session.memory.readSegment(await session.segment(target.id), target.offset, length),
    );
    if (options.file !== undefined) await writeFile(options.file, bytes);
    if (options.output === 'json') {
      context.stdout(
        toJson({
          ...targetFields(target),
          length: bytes.length,
          ...(options.file === undefined ? { hex: bytes.toString('hex') } : { file: options.file }),
        }),
      );
    } else if (options.file !== undefined) {
      context.stdout(
        `read ${bytes.length} bytes at ${describeTarget(target)} into ${options.file}\n`,
      );
    } else {
      context.stdout(options.hex ? `${bytes.toString('hex')}\n` : bytes.toString('utf8'));
    }
  },
});
