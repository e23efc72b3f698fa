/**
 * Starting clusteragent for `clusteradm join`: by default a detached process
 * that outlives clusteradm (`<node home>/agent.log`, `<node home>/agent.pid`),
 * replacing an agent already running from the same home (a re-join may have
 * brought new credentials); with `--foreground`, a child that shares this
 * terminal and ends with clusteradm.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import type { NodeView } from '../api/contracts.ts';
import type { AmalgamClient } from '../client/index.ts';
import {
  entryCommand,
  runningPid,
  type StartedDaemon,
  startDaemon,
  stopProcess,
  waitForDaemon,
} from './daemon-process.ts';

export interface AgentFiles {
  home: string;
  config: string;
}

export const agentLog = (home: string): string => join(home, 'agent.log');
export const agentPidFile = (home: string): string => join(home, 'agent.pid');

/** Stops the agent running from this home, if any; returns its pid. */
export async function stopRunningAgent(home: string): Promise<number | undefined> {
  const pid = await runningPid(agentPidFile(home));
  if (pid !== undefined) await stopProcess(pid);
  return pid;
}

export function startAgentDaemon(files: AgentFiles): Promise<StartedDaemon> {
  return startDaemon({
    what: 'clusteragent',
    entry: 'agent/main',
    args: ['--config', files.config],
    cwd: files.home,
    log: agentLog(files.home),
    pidFile: agentPidFile(files.home),
    failure: 'AGENT_START_FAILED',
  });
}

/**
 * Waits until the node is Ready (the agent's first heartbeat arrived) and,
 * when `pageserver` is asked for, until the agent published its page server.
 */
export async function waitForAgent(
  client: AmalgamClient,
  name: string,
  started: StartedDaemon,
  timeoutMs: number,
): Promise<NodeView> {
  let node: NodeView | undefined;
  await waitForDaemon(
    started,
    'clusteragent',
    'AGENT_START_FAILED',
    async () => {
      node = await client.nodes.get(name);
      return node.state === 'Ready' && node.pageserver !== null;
    },
    timeoutMs,
  );
  return node as NodeView;
}

/**
 * Runs the agent as a child on this terminal until it ends; SIGINT and SIGTERM
 * are passed on so it stops its page server cleanly. Resolves with its exit code.
 */
export function runAgentForeground(files: AgentFiles): Promise<number> {
  const child = spawn(process.execPath, [...entryCommand('agent/main'), '--config', files.config], {
    cwd: files.home,
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const forward = (signal: NodeJS.Signals) => () => child.kill(signal);
  const onInt = forward('SIGINT');
  const onTerm = forward('SIGTERM');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  return new Promise((resolve) => {
    child.once('exit', (code, signal) => {
      process.off('SIGINT', onInt);
      process.off('SIGTERM', onTerm);
      resolve(code ?? (signal === 'SIGTERM' || signal === 'SIGINT' ? 0 : 1));
    });
  });
}
