/**
 * The page-server wire protocol's constants, as native/include/amalgam_wire.h
 * defines them: 32-byte little-endian headers, op codes, status codes, the
 * payload limit and the STAT counters. The header is the source;
 * test/unit/native/wire-constants.test.ts reads it and fails when a value
 * here differs from it.
 */

/** AMW_MAGIC: "AMLG" as bytes on the wire. */
export const WIRE_MAGIC = 0x474c4d41;
/** AMW_VERSION. */
export const WIRE_VERSION = 1;
/** AMW_REQ_HEADER_SIZE and AMW_RESP_HEADER_SIZE: both headers are 32 bytes. */
export const HEADER_SIZE = 32;
/** AMW_MAX_PAYLOAD: the largest READ or WRITE, 1 MiB. */
export const MAX_PAYLOAD = 1 << 20;
/** AMW_DEV_NAME_SIZE: the NUL-padded device name that starts a device request's payload. */
export const DEVICE_NAME_SIZE = 64;

/** enum amw_opcode. */
export const Opcode = {
  READ: 1,
  WRITE: 2,
  CAS64: 3,
  FETCH_ADD64: 4,
  STAT: 5,
  DEVICE_READ: 6,
  DEVICE_WRITE: 7,
  DEVICE_STAT: 8,
  DEVICE_FSYNC: 9,
} as const;

/** Wire status codes (enum amw_status). */
export const WireStatus = {
  OK: 0,
  E_BAD_REQUEST: 1,
  E_UNSUPPORTED: 2,
  E_OUT_OF_RANGE: 3,
  E_TOO_LARGE: 4,
  E_UNALIGNED: 5,
  E_NO_DEVICE: 6,
  E_READ_ONLY: 7,
  E_IO: 8,
} as const;
export type WireStatusName = keyof typeof WireStatus;

/** Response flags (AMW_RF_*). */
export const ResponseFlag = {
  SWAPPED: 0x0001,
} as const;

/** Byte offsets of the fields of struct amw_req_header. */
export const RequestField = {
  magic: 0,
  version: 4,
  opcode: 5,
  flags: 6,
  requestId: 8,
  addr: 16,
  length: 24,
  reserved: 28,
} as const;

/** Byte offsets of the fields of struct amw_resp_header. */
export const ResponseField = {
  magic: 0,
  version: 4,
  opcode: 5,
  flags: 6,
  requestId: 8,
  status: 16,
  length: 20,
  reserved: 24,
} as const;

/** STAT counters, in payload order (enum amw_stat, AMW_STAT_COUNT of them). */
export const STAT_NAMES = [
  'requestsRead',
  'requestsWrite',
  'requestsCas64',
  'requestsFetchAdd64',
  'requestsStat',
  'requestsInvalid',
  'bytesRead',
  'bytesWritten',
  'errors',
  'connectionsAccepted',
  'connectionsOpen',
  'rangeStart',
  'rangeSize',
] as const;
