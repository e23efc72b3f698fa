/**
 * Exit codes and messages of clusteradm, run in process: 0 for help, 2 for
 * usage errors (caught before anything is read or sent), 1 for failures,
 * each failure one `error: CODE: ...` line.
 */
import t from 'tap';
import { COMMANDS } from '../../../services/cli/commands.ts';
import { runClusteradm } from '../../../services/cli/main.ts';
import { captureContext } from './cli-context.ts';

const HASH = `sha256:${'a'.repeat(64)}`;
const TOKEN = 'abcdef.0123456789abcdef';

async function run(args: string[]) {
  const { context, out } = captureContext();
  const code = await runClusteradm(args, context);
  return { code, ...out };
}

t.test('--help of every command exits 0 and documents -o where it prints', async (t) => {
  const top = await run(['--help']);
  t.equal(top.code, 0);
  t.match(top.stdout, /^Usage: clusteradm/);
  for (const command of COMMANDS) {
    const help = await run([...command.words, '--help']);
    t.equal(help.code, 0, command.words.join(' '));
    t.match(help.stdout, `Usage: clusteradm ${command.words.join(' ')}`);
    t.match(help.stdout, '-o, --output <format>', command.words.join(' '));
  }
});

t.test('usage errors exit 2 with a message on stderr', async (t) => {
  const cases: [string[], RegExp][] = [
    [[], /Usage: clusteradm/],
    [['frobnicate'], /unknown command 'frobnicate'/],
    [['token'], /Usage: clusteradm token/],
    [['nodes', '--bogus'], /unknown option '--bogus'/],
    [['nodes', '-o', 'yaml'], /Allowed choices are table, json/],
    [['node', 'describe'], /missing required argument 'name'/],
    [['mem', 'alloc', '12X'], /not a size: "12X"/],
    [['mem', 'alloc', '0'], /at least 1 byte/],
    [['token', 'create', '--ttl', 'forever'], /not a duration/],
    [['token', 'create', '--max-uses', '0'], /whole number from 1/],
    [['join', 'https://127.0.0.1:1', '--ca-cert-hash', HASH], /required option '--token <token>'/],
    [['join', 'https://127.0.0.1:1', '--token', TOKEN], /required option '--ca-cert-hash/],
    [['join', 'https://127.0.0.1:1', '--token', 'nope', '--ca-cert-hash', HASH], /bootstrap token/],
    [
      ['join', 'https://127.0.0.1:1', '--token', TOKEN, '--ca-cert-hash', 'md5:x'],
      /sha256:<64 hex/,
    ],
    [['join', 'http://127.0.0.1:1', '--token', TOKEN, '--ca-cert-hash', HASH], /https:\/\//],
    [
      [
        'join',
        'https://127.0.0.1:1',
        '--token',
        TOKEN,
        '--ca-cert-hash',
        HASH,
        '--name',
        'Not_A_Name',
      ],
      /DNS label/,
    ],
    [
      [
        'join',
        'https://127.0.0.1:1',
        '--token',
        TOKEN,
        '--ca-cert-hash',
        HASH,
        '--contribute',
        'lots',
      ],
      /not a size/,
    ],
    [['init', '--listen', 'localhost'], /HOST:PORT/],
    [['init', '--listen', '127.0.0.1:70000'], /HOST:PORT/],
    [['init', '--advertise-address', 'example.com'], /IP address/],
    [['init', '--store', 'sqlite'], /Allowed choices are embedded, etcd/],
    [['init', '--store', 'etcd'], /--store etcd needs --etcd-endpoints/],
    [['init', '--etcd-endpoints', 'https://127.0.0.1:2379'], /only for --store etcd/],
    [['init', '--store', 'etcd', '--etcd-endpoints', 'http://127.0.0.1:2379'], /https:\/\//],
  ];
  for (const [args, message] of cases) {
    const result = await run(args);
    t.equal(result.code, 2, args.join(' '));
    t.match(result.stderr, message, args.join(' '));
    t.equal(result.stdout, '', `${args.join(' ')}: nothing on stdout`);
  }
});

t.test('a failure is one line naming its code, exit 1', async (t) => {
  const result = await run(['nodes', '--config', '/nonexistent/admin.json']);
  t.equal(result.code, 1);
  t.match(result.stderr, /^error: CONFIG_NOT_FOUND: .*\/nonexistent\/admin\.json/);
  t.equal(result.stderr.trimEnd().split('\n').length, 1);
});
