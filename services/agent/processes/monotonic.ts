/**
 * The lease clock of the agent and its fence shims: CLOCK_MONOTONIC in
 * milliseconds (process.hrtime, which libuv reads from CLOCK_MONOTONIC; one
 * clock for every process of the host, so the agent can hand a deadline to a
 * shim). It never steps when the wall clock does: a lease computed on it
 * lasts exactly its duration whatever NTP or an admin does to the time of day.
 */
export const monotonicMs = (): number => Number(process.hrtime.bigint() / 1_000_000n);
