/** Where the network process space lives in the store (next to keys.ts). */
const ROOT = '/amalgam/v1';

export const processKeys = {
  /** The PID block table: one value, so every claim is one CAS. */
  pidBlocks: `${ROOT}/pids/blocks`,
  /** One record per cluster PID (watchable as `processes/`). Zero-padded so keys sort by PID. */
  processes: `${ROOT}/processes/`,
  process: (cpid: number) => `${ROOT}/processes/${String(cpid).padStart(10, '0')}`,
  /** Each node's last process-load report. */
  loads: `${ROOT}/process-loads/`,
  load: (name: string) => `${ROOT}/process-loads/${name}`,
} as const;
