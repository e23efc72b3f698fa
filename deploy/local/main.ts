/**
 * deploy/local: the command behind `deploy/local/up`, `down`, `partition`, ... (bash wrappers).
 * Needs root (network namespaces, iptables, tc). See cluster.ts for what it builds.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import {
  type ClusterState,
  type DaemonName,
  defaultStateRoot,
  down,
  heal,
  kill,
  loadState,
  netem,
  partition,
  pause,
  resume,
  start,
  status,
  up,
} from './cluster.ts';
import { staleClaims } from './net.ts';
import { writePrometheusDir } from './prometheus.ts';

const USAGE = `usage: deploy/local/<command> [--id ID] ...

  up N control + M workers     e.g. \`up 3 control + 3 workers\` (also \`up 3 3\`); prints the id
  down [--all]                 kill everything, delete the namespaces and the state
  status                       machines, addresses, daemons
  partition G1 [G2 ...]        groups of machines (comma-separated) that cannot reach each other;
                               machines in no group join the last one (\`partition c0\` isolates c0)
  heal                         remove every partition
  netem M[,M..]|all [--delay MS] [--jitter MS] [--loss PCT] | clear
  pause M [DAEMON]             SIGSTOP the machine's daemons (etcd, clusterd, agent)
  resume M [DAEMON]            SIGCONT
  kill M [DAEMON]              SIGKILL (with their children, e.g. the page server)
  start M [DAEMON]             start again what is not running

--id picks the cluster (default: $AMALGAM_LOCAL_ID, else the only one under
$AMALGAM_LOCAL_STATE or /tmp/amalgam-local). The admin home is <state>/<id>/admin:
  node bin/clusteradm.mjs nodes --home /tmp/amalgam-local/<id>/admin
`;

function fail(message: string): never {
  process.stderr.write(`deploy/local: ${message}\n`);
  process.exit(2);
}

function option(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  if (i < 0) return undefined;
  const value = args[i + 1];
  if (value === undefined) fail(`${name} needs a value`);
  args.splice(i, 2);
  return value;
}

function clusterIds(): string[] {
  try {
    return readdirSync(defaultStateRoot()).filter((d) => /^[a-z0-9]{1,8}$/.test(d));
  } catch {
    return [];
  }
}

function pickCluster(id: string | undefined): ClusterState {
  const chosen = id ?? process.env.AMALGAM_LOCAL_ID;
  if (chosen) return loadState(join(defaultStateRoot(), chosen));
  const ids = clusterIds();
  if (ids.length === 0) fail(`no cluster under ${defaultStateRoot()}; run deploy/local/up`);
  if (ids.length > 1) fail(`several clusters (${ids.join(', ')}): pass --id`);
  return loadState(join(defaultStateRoot(), ids[0] as string));
}

/** `3 control + 3 workers`, `3 control`, `3 3`, `3`. */
export function parseUpArgs(args: string[]): { control: number; workers: number } {
  const words = args.filter((w) => w !== '+' && w !== 'and');
  let control: number | undefined;
  let workers: number | undefined;
  const numbers: number[] = [];
  for (let i = 0; i < words.length; i++) {
    const n = Number(words[i]);
    if (!Number.isInteger(n)) fail(`not a number: ${words[i]}\n\n${USAGE}`);
    const unit = words[i + 1];
    if (unit !== undefined && /^control/.test(unit)) {
      control = n;
      i++;
    } else if (unit !== undefined && /^workers?$/.test(unit)) {
      workers = n;
      i++;
    } else numbers.push(n);
  }
  control ??= numbers.shift() ?? 3;
  workers ??= numbers.shift() ?? 0;
  return { control, workers };
}

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  if (!command || command === '-h' || command === '--help' || command === 'help') {
    process.stdout.write(USAGE);
    return;
  }
  if (process.getuid?.() !== 0) fail('needs root (network namespaces, iptables, tc)');
  const id = option(rest, '--id');
  switch (command) {
    case 'up': {
      // Leftovers of test processes that were SIGKILLed: tear them down first.
      for (const stale of staleClaims()) {
        try {
          await down(loadState(stale.stateDir));
        } catch {
          // its state is gone; the claim is released by the next claim scan
        }
      }
      const { control, workers } = parseUpArgs(rest);
      const state = await up({
        control,
        workers,
        ...(id ? { id } : {}),
        log: (line) => process.stderr.write(`[up] ${line}\n`),
      });
      process.stderr.write(`${status(state).join('\n')}\n`);
      const prometheus = writePrometheusDir(state, join(state.stateDir, 'prometheus'));
      process.stdout.write(
        [
          `cluster ${state.id} is up: ${control} control, ${workers} workers`,
          `  node bin/clusteradm.mjs nodes --home ${state.adminHome}`,
          `  prometheus --config.file=${prometheus} --storage.tsdb.path=${state.stateDir}/prometheus/data`,
          `  deploy/local/down --id ${state.id}`,
          '',
        ].join('\n'),
      );
      return;
    }
    case 'down': {
      if (rest.includes('--all')) {
        for (const each of clusterIds()) await down(loadState(join(defaultStateRoot(), each)));
        return;
      }
      const state = pickCluster(id);
      await down(state);
      process.stdout.write(`cluster ${state.id} is down\n`);
      return;
    }
    case 'status':
      process.stdout.write(`${status(pickCluster(id)).join('\n')}\n`);
      return;
    case 'partition': {
      if (rest.length === 0) fail('partition needs at least one group of machines');
      const groups = partition(
        pickCluster(id),
        rest.map((g) => g.split(',').filter(Boolean)),
      );
      process.stdout.write(`partitioned: ${groups.map((g) => g.join(',')).join(' | ')}\n`);
      return;
    }
    case 'heal':
      heal(pickCluster(id));
      process.stdout.write('healed\n');
      return;
    case 'netem': {
      const state = pickCluster(id);
      const target = rest.shift() ?? fail('netem needs machines (or all)');
      const names = target === 'all' ? state.machines.map((m) => m.name) : target.split(',');
      if (rest[0] === 'clear') {
        netem(state, names, 'clear');
      } else {
        const num = (flag: string) => {
          const v = option(rest, flag);
          return v === undefined ? undefined : Number.parseFloat(v);
        };
        const delayMs = num('--delay');
        const jitterMs = num('--jitter');
        const lossPercent = num('--loss');
        netem(state, names, {
          ...(delayMs === undefined ? {} : { delayMs }),
          ...(jitterMs === undefined ? {} : { jitterMs }),
          ...(lossPercent === undefined ? {} : { lossPercent }),
        });
      }
      process.stdout.write(`netem ${names.join(',')}: ${rest.join(' ') || 'set'}\n`);
      return;
    }
    case 'pause':
    case 'resume':
    case 'kill':
    case 'start': {
      const state = pickCluster(id);
      const [name, daemon] = rest;
      if (!name) fail(`${command} needs a machine`);
      const only = daemon as DaemonName | undefined;
      const done =
        command === 'pause'
          ? pause(state, name, only)
          : command === 'resume'
            ? resume(state, name, only)
            : command === 'kill'
              ? await kill(state, name, only)
              : start(state, name, only);
      process.stdout.write(`${command} ${name}: ${done.join(', ') || 'nothing to do'}\n`);
      return;
    }
    default:
      fail(`unknown command ${command}\n\n${USAGE}`);
  }
}

main(process.argv.slice(2)).then(
  () => process.exit(0),
  (err: Error) => {
    process.stderr.write(`deploy/local: ${err.message}\n`);
    process.exit(1);
  },
);
