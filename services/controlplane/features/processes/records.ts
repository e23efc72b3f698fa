/**
 * The network process space in the store: where its records live, what they
 * are, and the codec. The ONLY place a process record, the PID-block table or
 * a process-load report is parsed; everything else reads them through here.
 *
 *   pids/blocks             PidBlockTable: one value, so every claim is one CAS
 *   processes/<cpid>        ProcessRecord (core/processes.ts), zero-padded so keys sort by PID
 *   process-loads/<node>    ProcessLoadView: the node's last load report, as served
 */
import type { ProcessLoadView, ProcessView } from '../../../api/contracts.ts';
import { createPidBlockTable, type PidBlockTable } from '../../../core/pid-blocks.ts';
import type { ProcessRecord } from '../../../core/processes.ts';
import type { Store } from '../../../store/store.ts';
import type { Current } from '../../service/optimistic.ts';

const ROOT = '/amalgam/v1';
/** The watchable root of process records, relative to the control plane's root. */
const PROCESSES = 'processes/';

export const processKeys = {
  pidBlocks: `${ROOT}/pids/blocks`,
  processes: `${ROOT}/${PROCESSES}`,
  process: (cpid: number) => `${ROOT}/${PROCESSES}${String(cpid).padStart(10, '0')}`,
  loads: `${ROOT}/process-loads/`,
  load: (name: string) => `${ROOT}/process-loads/${name}`,
} as const;

export type { PidBlockTable, ProcessRecord };
/** A load report is stored as it is served. */
export type ProcessLoadRecord = ProcessLoadView;

export const parseProcessRecord = (raw: string): ProcessRecord => JSON.parse(raw) as ProcessRecord;
export const parsePidBlockTable = (raw: string): PidBlockTable => JSON.parse(raw) as PidBlockTable;
export const parseProcessLoad = (raw: string): ProcessLoadRecord =>
  JSON.parse(raw) as ProcessLoadRecord;

/** The record as `GET /v1/processes/{cpid}` (and a watch of `processes/`) shows it. */
export function toProcessView(record: ProcessRecord): ProcessView {
  return record;
}

/** The watch registry's entry for `processes/<cpid>` (see service/watch-service.ts). */
export const processWatchView = {
  root: PROCESSES,
  view: (_key: string, raw: string): ProcessView => toProcessView(parseProcessRecord(raw)),
};

// ---- typed reads (one store read each, or inside a CAS decision) ----

export async function readProcessRecord(
  store: Store,
  cpid: number,
): Promise<ProcessRecord | undefined> {
  const kv = await store.get(processKeys.process(cpid));
  return kv === undefined ? undefined : parseProcessRecord(kv.value);
}

export async function readPidBlockTable(store: Store): Promise<PidBlockTable> {
  const kv = await store.get(processKeys.pidBlocks);
  return kv === undefined ? createPidBlockTable() : parsePidBlockTable(kv.value);
}

/** The process record as a CAS decision sees it (optimistic.ts already parsed the JSON). */
export const processIn = (current: Current, cpid: number): ProcessRecord | undefined =>
  current.get<ProcessRecord>(processKeys.process(cpid));

export const pidBlockTableIn = (current: Current): PidBlockTable =>
  current.get<PidBlockTable>(processKeys.pidBlocks) ?? createPidBlockTable();
