/**
 * The nemesis: injects one fault at a time into a deploy/local cluster, holds it, undoes it,
 * lets the cluster breathe, and records each step in the history (a partition is recorded after
 * it is in place and its heal before it is undone, so the recorded window is inside the real
 * one). Faults:
 *  - `partition-minority`: one control machine cut off from every other machine;
 *  - `partition-leader`:   the machine of the etcd leader cut off (the majority must elect);
 *  - `kill`:               SIGKILL of a control machine's etcd and clusterd, restarted after;
 *  - `pause`:              SIGSTOP of a control machine for longer than the leader lease (5 s)
 *                          and the etcd election timeout;
 *  - `loss`:               30% of a control machine's packets dropped.
 */
import type { LocalCluster } from '../harness/netns.ts';
import type { History } from './history.ts';
import { rng } from './workload.ts';

export type Fault = 'partition-minority' | 'partition-leader' | 'kill' | 'pause' | 'loss';
export const ALL_FAULTS: Fault[] = [
  'partition-minority',
  'partition-leader',
  'kill',
  'pause',
  'loss',
];

export interface NemesisOptions {
  cluster: LocalCluster;
  history: History;
  faults: Fault[];
  until: number;
  seed: number;
  /** How long each fault is held; default 8 s (past the 5 s leader lease). */
  holdMs?: number;
  /** Quiet time between faults; default 3 s. */
  quietMs?: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function runNemesis(o: NemesisOptions): Promise<Fault[]> {
  const random = rng(o.seed);
  const control = o.cluster.control.map((m) => m.name);
  const hold = o.holdMs ?? 8_000;
  const quiet = o.quietMs ?? 3_000;
  const pick = () => control[Math.floor(random() * control.length)] as string;
  const done: Fault[] = [];
  for (let i = 0; performance.now() + hold < o.until; i++) {
    const fault = o.faults[i % o.faults.length] as Fault;
    done.push(fault);
    switch (fault) {
      case 'partition-minority':
      case 'partition-leader': {
        const victim =
          fault === 'partition-leader' ? ((await o.cluster.etcdLeader()) ?? pick()) : pick();
        const groups = o.cluster.partition([[victim]]);
        o.history.nemesis('partition', groups);
        // Longer than the other faults: a call to the minority takes up to NO_QUORUM's 6 s, and
        // the check needs calls that begin and end inside the window.
        await sleep(hold * 1.5);
        o.history.nemesis('heal', null);
        o.cluster.heal();
        break;
      }
      case 'kill': {
        const victim = pick();
        const killed = await o.cluster.kill(victim);
        o.history.nemesis('kill', { machine: victim, daemons: killed });
        await sleep(hold / 2);
        o.history.nemesis('start', { machine: victim, daemons: o.cluster.start(victim) });
        break;
      }
      case 'pause': {
        const victim = pick();
        o.history.nemesis('pause', { machine: victim, daemons: o.cluster.pause(victim) });
        await sleep(hold);
        o.history.nemesis('resume', { machine: victim, daemons: o.cluster.resume(victim) });
        break;
      }
      case 'loss': {
        const victim = pick();
        o.cluster.netem([victim], { lossPercent: 30 });
        o.history.nemesis('loss', { machine: victim, percent: 30 });
        await sleep(hold);
        o.history.nemesis('clear', { machine: victim });
        o.cluster.netem([victim], 'clear');
        break;
      }
    }
    await sleep(quiet);
  }
  return done;
}

/** Undo everything: heal, resume, restart what is down, clear loss. */
export function healAll(cluster: LocalCluster, history: History): void {
  cluster.heal();
  for (const m of cluster.control) {
    cluster.resume(m.name);
    cluster.start(m.name);
    cluster.netem([m.name], 'clear');
  }
  history.nemesis('heal-all', null);
}
