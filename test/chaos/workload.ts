/**
 * The chaos workload: `clients` concurrent processes, each bound to one control machine's API,
 * each running one operation at a time until the deadline: joins of fresh nodes, joins that
 * contend for a few shared names (each with its own key: only one may win a name), allocations
 * with unique ids, and allocations that contend for a few shared ids (each process asks for its
 * own size, so two winners would be two different allocations), and claims of cluster-PID blocks
 * (about 13% of operations; each claim is its own block, so two acknowledged blocks must never
 * share a PID). Every call and outcome goes to the history.
 */
import { createKeyAndCsr, verifyCsr } from '../../services/pki/index.ts';
import type { History } from './history.ts';
import type { SystemUnderTest } from './systems.ts';

const MiB = 1024 * 1024;

/** Deterministic PRNG (mulberry32), so a run is described by its seed. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Definitely not applied: the server refused it. Anything else (timeout, NO_QUORUM) may apply. */
const DEFINITE = new Set([
  'NAME_TAKEN',
  'INVALID_ARGUMENT',
  'RANGE_EXHAUSTED',
  'NODE_NOT_FOUND',
  'TOKEN_INVALID',
  'TOKEN_NOT_FOUND',
  'TOKEN_EXPIRED',
  'TOKEN_MALFORMED',
  'FORBIDDEN',
  'UNAUTHENTICATED',
  'CSR_INVALID',
  'CONTENDED',
  'PID_SPACE_EXHAUSTED',
  // Refused before anything is written (join's limit, its claim's CAS, the door).
  'RATE_LIMITED',
  'TOKEN_EXHAUSTED',
  'CREDENTIAL_REVOKED',
]);

export function outcomeOf(err: unknown): {
  type: 'fail' | 'info';
  value: { code: string; message: string };
} {
  const e = err as { code?: unknown; message?: unknown };
  const code = typeof e.code === 'string' ? e.code : 'ERROR';
  return {
    type: DEFINITE.has(code) ? 'fail' : 'info',
    value: { code, message: String(e.message).slice(0, 200) },
  };
}

export interface WorkloadOptions {
  system: SystemUnderTest;
  history: History;
  clients: number;
  /** performance.now() value at which to stop starting operations. */
  until: number;
  seed: number;
  /** Contended names/ids in the pool. */
  contended?: number;
}

/** After an indeterminate outcome (a machine down, refusing connections): not a tight loop. */
const backOff = () => new Promise((r) => setTimeout(r, 200));

export async function runWorkload(o: WorkloadOptions): Promise<void> {
  const contended = o.contended ?? 4;
  const run = async (p: number): Promise<void> => {
    const random = rng(o.seed * 1000 + p);
    const target = o.system.targets[p % o.system.targets.length] as string;
    for (let k = 0; performance.now() < o.until; k++) {
      const dice = random();
      if (dice < 0.45) {
        const name = dice < 0.35 ? `n${p}-${k}` : `shared-${Math.floor(random() * contended)}`;
        const { csrPem } = await createKeyAndCsr({ commonName: name });
        const identity = (await verifyCsr(csrPem)).publicKeyHash;
        const contributedBytes = (16 + Math.floor(random() * 4) * 16) * MiB;
        const op = o.history.invoke(p, 'join', target, { name, identity, contributedBytes });
        try {
          const r = await o.system.join(target, { name, csrPem, identity, contributedBytes });
          o.history.complete(op, 'ok', p, 'join', target, r);
        } catch (err) {
          const { type, value } = outcomeOf(err);
          o.history.complete(op, type, p, 'join', target, value);
          if (type === 'info') await backOff();
        }
      } else if (dice >= 0.87) {
        // The owner the server records is the caller's (amalgam: `admin`); the history keeps
        // which workload process asked.
        const size = (1 + Math.floor(random() * 8)) * 16;
        const op = o.history.invoke(p, 'pid-block', target, { size, owner: `workload-${p}` });
        try {
          const r = await o.system.claimPidBlock(target, { size });
          o.history.complete(op, 'ok', p, 'pid-block', target, r);
        } catch (err) {
          const { type, value } = outcomeOf(err);
          o.history.complete(op, type, p, 'pid-block', target, value);
          if (type === 'info') await backOff();
        }
      } else {
        const shared = dice > 0.8;
        const id = shared ? `shared-seg-${Math.floor(random() * contended)}` : `s${p}-${k}`;
        // Contended ids: each process its own size, so two acknowledgements are two allocations.
        const size = shared ? (p + 1) * 2 * MiB : (1 + Math.floor(random() * 4)) * 2 * MiB;
        const op = o.history.invoke(p, 'allocate', target, { id, size });
        try {
          const r = await o.system.allocate(target, { id, size });
          o.history.complete(op, 'ok', p, 'allocate', target, r);
        } catch (err) {
          const { type, value } = outcomeOf(err);
          o.history.complete(op, type, p, 'allocate', target, value);
          if (type === 'info') await backOff();
        }
      }
    }
  };
  await Promise.all(Array.from({ length: o.clients }, (_, p) => run(p)));
}
