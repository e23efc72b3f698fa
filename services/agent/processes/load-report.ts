/**
 * The process-load report: every `reportMs`, this node's CPUs, speed, load
 * and the CPU use of each copy it runs (from /proc/<pid>/stat), for placement
 * and rebalancing. It also publishes the agent's process endpoint.
 */
import { readFile } from 'node:fs/promises';
import { availableParallelism, loadavg } from 'node:os';
import type { Logger } from 'pino';
import type { ProcessLoadReport } from '../../api/contracts.ts';
import { monotonicMs } from './monotonic.ts';
import type { ShimCopy } from './shim-copy.ts';

const TICKS_PER_SECOND = 100;

/** The CPU use of a copy since the last call (CPUs, 0..4096). */
async function cpuOf(copy: ShimCopy): Promise<number> {
  if (copy.pid === null) return 0;
  try {
    const stat = await readFile(`/proc/${copy.pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]);
    const now = monotonicMs();
    const dt = (now - copy.cpu.at) / 1000;
    if (dt > 0 && copy.cpu.ticks > 0)
      copy.cpu.use = (ticks - copy.cpu.ticks) / TICKS_PER_SECOND / dt;
    copy.cpu.ticks = ticks;
    copy.cpu.at = now;
    return Math.max(0, Math.min(copy.cpu.use, 4096));
  } catch {
    return 0;
  }
}

async function runnable(): Promise<number> {
  try {
    const text = await readFile('/proc/loadavg', 'utf8');
    return Number(text.split(' ')[3]?.split('/')[0] ?? 0);
  } catch {
    return 0; // not Linux
  }
}

export interface LoadReporterOptions {
  node: string;
  cpus?: number;
  cpuSpeed?: number;
  agentAddress: string;
  report(node: string, report: ProcessLoadReport): Promise<unknown>;
  copies(): Iterable<ShimCopy>;
  logger: Logger;
}

/** Builds and sends one report. */
export async function reportLoad(options: LoadReporterOptions): Promise<void> {
  const processes = [];
  for (const c of options.copies()) {
    if (!c.done) processes.push({ cpid: c.cpid, epoch: c.epoch, cpu: await cpuOf(c) });
  }
  try {
    await options.report(options.node, {
      cpus: options.cpus ?? availableParallelism(),
      cpuSpeed: options.cpuSpeed ?? 1,
      load1: Math.min(loadavg()[0] ?? 0, 1e6),
      runnable: await runnable(),
      agentAddress: options.agentAddress,
      processes: processes.slice(0, 1024),
    });
  } catch (err) {
    options.logger.warn({ err }, 'process-load report failed');
  }
}

/** Reports every `periodMs` until closed (`agentAddress` read at each report). */
export function startLoadReports(
  options: Omit<LoadReporterOptions, 'agentAddress'> & { agentAddress(): string },
  periodMs: number,
): { close(): void } {
  let closed = false;
  let timer: NodeJS.Timeout | undefined;
  const tick = (): void => {
    void reportLoad({ ...options, agentAddress: options.agentAddress() }).finally(() => {
      if (!closed) timer = setTimeout(tick, periodMs);
    });
  };
  tick();
  return {
    close() {
      closed = true;
      clearTimeout(timer);
    },
  };
}
