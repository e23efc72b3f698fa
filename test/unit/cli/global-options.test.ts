/**
 * `--home`, `--config` and `-o` work before the command's words as after
 * them (`clusteradm --home DIR nodes`), the value given after the words wins,
 * and a global option the command does not take is a usage error. Run in
 * process; nothing is reached but the file system.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { type CommandOptions, withGlobalOptions } from '../../../services/cli/global-options.ts';
import { runClusteradm } from '../../../services/cli/main.ts';
import { captureContext } from './cli-context.ts';

async function run(args: string[]) {
  const { context, out } = captureContext();
  const code = await runClusteradm(args, context);
  return { code, ...out };
}

function command(
  values: Record<string, unknown>,
  given: string[],
  declared = ['home', 'config', 'output'],
): CommandOptions {
  return {
    values,
    sourceOf: (name) =>
      given.includes(name) ? 'cli' : values[name] === undefined ? undefined : 'default',
    declares: (name) => declared.includes(name),
    name: 'nodes',
  };
}

t.test(
  'the decision: a global fills a default, the command line after the words wins',
  async (t) => {
    t.same(withGlobalOptions({ output: 'json' }, command({ output: 'table' }, [])), {
      output: 'json',
    });
    t.same(withGlobalOptions({ output: 'json' }, command({ output: 'table' }, ['output'])), {
      output: 'table',
    });
    t.same(withGlobalOptions({ home: '/a' }, command({ output: 'table' }, [])), {
      output: 'table',
      home: '/a',
    });
    t.same(withGlobalOptions({}, command({ home: '/b' }, ['home'])), { home: '/b' });
    t.throws(() => withGlobalOptions({ config: 'x' }, command({}, [], ['home', 'output'])), {
      message: /does not take --config/,
    });
  },
);

t.test('--home before or after the command reads the same admin home', async (t) => {
  const before = await run(['--home', '/nonexistent/h1', 'nodes']);
  const after = await run(['nodes', '--home', '/nonexistent/h1']);
  for (const result of [before, after]) {
    t.equal(result.code, 1);
    t.match(result.stderr, /CONFIG_NOT_FOUND.*\/nonexistent\/h1\/admin\.json/);
  }
  const both = await run([
    '--home',
    '/nonexistent/h1',
    'token',
    'list',
    '--home',
    '/nonexistent/h2',
  ]);
  t.match(both.stderr, /\/nonexistent\/h2\/admin\.json/, 'the one after the words wins');
});

t.test('--config and -o before a nested command', async (t) => {
  const result = await run([
    '-o',
    'json',
    '--config',
    '/nonexistent/admin.json',
    'node',
    'describe',
    'a',
  ]);
  t.equal(result.code, 1);
  t.match(result.stderr, /CONFIG_NOT_FOUND.*\/nonexistent\/admin\.json \(from --config\)/);
});

t.test('global options are checked like the command would', async (t) => {
  const yaml = await run(['-o', 'yaml', 'nodes']);
  t.equal(yaml.code, 2);
  t.match(yaml.stderr, /Allowed choices are table, json/);
  const config = await run(['--config', '/x.json', 'init', '--no-start']);
  t.equal(config.code, 2);
  t.match(config.stderr, /clusteradm init does not take --config/);
});

t.test('after `run --` every word belongs to the process, --home included', async (t) => {
  const result = await run(['run', '--', 'ls', '--home', '/nonexistent/h3']);
  t.equal(result.code, 1);
  t.match(result.stderr, /\/nonexistent\/user-home\/\.amalgam\/admin\.json/);
});

t.test('init --no-start with --home and -o json before the command', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'amalgam-global-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const home = join(dir, 'home');
  const result = await run(['--home', home, '-o', 'json', 'init', '--no-start']);
  t.equal(result.code, 0, result.stderr);
  const printed = JSON.parse(result.stdout) as { home: string; adminConfig: string };
  t.equal(printed.home, home);
  t.ok(await readFile(printed.adminConfig, 'utf8'));
});
