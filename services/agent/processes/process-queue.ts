import type { WorkQueue } from '../../reconcile/index.ts';

/** The work queue keyed by cluster PID (its keys are strings). */
export class KeyedProcesses {
  constructor(readonly queue: WorkQueue<string>) {}
  add(cpid: number): void {
    this.queue.add(String(cpid));
  }
  addAfter(cpid: number, ms: number): void {
    this.queue.addAfter(String(cpid), ms);
  }
  close(): Promise<void> {
    return this.queue.close();
  }
}
