// The fence shim: one small process per copy of a cluster process, between
// the agent and the process. Plain JavaScript so it starts fast, without the
// TypeScript loader.
//
// It enforces the agent's lease on the copy even when the agent cannot: the
// agent writes `deadline <ms>` lines on stdin each time a heartbeat is
// acknowledged (the lease runs from the send time of that beat). Deadlines are
// CLOCK_MONOTONIC milliseconds (process.hrtime, one clock for every process of
// the host), never wall-clock time: a step of the wall clock (NTP, an admin's
// `date -s`) neither shortens nor stretches a lease. When the
// deadline passes (the agent is partitioned, frozen or dead) or stdin closes
// (the agent died), the shim SIGKILLs the process. The process itself runs
// under `setpriv --pdeathsig KILL`, so it also dies with the shim.
//
// It also writes the interval log: a `start` line before the spawn and an
// `end` line after the exit is reaped, with CLOCK_MONOTONIC nanoseconds
// (process.hrtime), comparable between processes of one host. The interval is
// therefore a superset of the time the process really ran.
//
// The process runs as `runAs` ({uid, gid, groups}, decided by the agent):
// through setpriv (ids and supplementary groups, then the death signal, which
// setpriv sets after changing ids so that it holds), else through spawn's
// uid/gid (no supplementary groups).
//
// stdout: JSON lines {"pid": n} once spawned, {"exit": code, "signal": s, "fenced": bool} last.
// AMALGAM_SHIM_SPEC (environment: readable by root only, unlike argv, which every user
// of the machine reads in /proc/<pid>/cmdline): JSON {command, args, env, cwd, logFile,
// intervalLog, cpid, epoch, node, copy, deadline, setpriv, runAs}
import { spawn } from 'node:child_process';
import { appendFileSync, openSync } from 'node:fs';

const spec = JSON.parse(process.env.AMALGAM_SHIM_SPEC ?? '{}');
/** CLOCK_MONOTONIC in ms, the agent's lease clock (services/agent/processes/monotonic.ts). */
const monotonicMs = () => Number(process.hrtime.bigint() / 1_000_000n);
let deadline = Number(spec.deadline) || 0;
let fenced = false;
let child;
let exited = false;

function interval(event, extra = {}) {
  if (!spec.intervalLog) return;
  const line = JSON.stringify({
    cpid: spec.cpid,
    epoch: spec.epoch,
    node: spec.node,
    copy: spec.copy,
    event,
    t: process.hrtime.bigint().toString(),
    pid: child?.pid ?? null,
    ...extra,
  });
  appendFileSync(spec.intervalLog, `${line}\n`);
}

function say(obj) {
  try {
    process.stdout.write(`${JSON.stringify(obj)}\n`);
  } catch {
    // the agent is gone; the exit is in the interval log
  }
}

function kill(why) {
  if (exited || !child) return;
  if (why === 'fence') fenced = true;
  try {
    child.kill('SIGKILL');
  } catch {
    // already gone
  }
}

// The agent reads our stdout; when it is gone (EPIPE), so is our lease.
process.stdout.on('error', () => kill('fence'));

if (monotonicMs() >= deadline) {
  say({ exit: null, signal: null, fenced: true, error: 'lease already expired' });
  process.exit(0);
}

const log = openSync(spec.logFile, 'a');
interval('start');
const runAs = spec.runAs ?? null;
const ids = runAs
  ? [
      `--reuid=${runAs.uid}`,
      `--regid=${runAs.gid}`,
      runAs.groups.length > 0 ? `--groups=${runAs.groups.join(',')}` : '--clear-groups',
    ]
  : [];
const argv = spec.setpriv
  ? [spec.setpriv, [...ids, '--pdeathsig', 'KILL', '--', spec.command, ...spec.args]]
  : [spec.command, spec.args];
child = spawn(argv[0], argv[1], {
  cwd: spec.cwd,
  env: spec.env,
  stdio: ['ignore', log, log],
  ...(runAs && !spec.setpriv ? { uid: runAs.uid, gid: runAs.gid } : {}),
});
child.once('error', (err) => {
  if (exited) return;
  exited = true;
  interval('end', { error: String(err.message) });
  say({ exit: null, signal: null, fenced: false, error: String(err.message) });
  process.exit(0);
});
child.once('spawn', () => say({ pid: child.pid }));
child.once('exit', (code, signal) => {
  if (exited) return;
  exited = true;
  interval('end', { code, signal, fenced });
  say({ exit: code, signal, fenced });
  // Let stdout drain to the agent (if it still reads), then go.
  setTimeout(() => process.exit(0), 20);
});

// The lease: checked every 25 ms (a timer that fires late under load only
// makes the shim later, which the target's fence margin covers).
const timer = setInterval(() => {
  if (monotonicMs() >= deadline) kill('fence');
}, 25);
timer.unref?.();

let buffer = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (data) => {
  buffer += data;
  for (let i = buffer.indexOf('\n'); i >= 0; i = buffer.indexOf('\n')) {
    const line = buffer.slice(0, i).trim();
    buffer = buffer.slice(i + 1);
    const [word, value] = line.split(' ');
    if (word === 'deadline') {
      const next = Number(value);
      if (Number.isFinite(next)) deadline = next;
      if (monotonicMs() >= deadline) kill('fence');
    } else if (word === 'signal' && child && !exited) {
      try {
        child.kill(value);
      } catch {
        // gone
      }
    } else if (word === 'kill') kill('asked');
  }
});
process.stdin.on('end', () => kill('fence'));
process.stdin.on('error', () => kill('fence'));
// The agent's SIGTERM/SIGINT to its group must not orphan the process: die with it.
for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP']) process.on(sig, () => kill('fence'));
