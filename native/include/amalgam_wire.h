/*
 * amalgam_wire.h - the one wire protocol spoken by every native part of amalgam
 * (page server, netmem client library, remote devices) and by the TypeScript
 * client in services/client/pageserver-client.ts (its constants: services/api/wire.ts,
 * checked against this file by test/unit/native/wire-constants.test.ts).
 *
 * Framing
 *   A connection carries a stream of requests; each is a 32-byte request header
 *   followed by a payload whose size depends on the opcode (table below). The
 *   server answers each request with a 32-byte response header followed by a
 *   payload of `length` bytes. Responses are sent in the order the requests
 *   arrived, and each echoes the request id, so a client may pipeline as many
 *   requests as it likes on one connection.
 *
 * Byte order
 *   Every multi-byte integer in a header or payload is LITTLE-ENDIAN on the
 *   wire. The structs below describe the layout byte for byte (packed, no
 *   padding); use amw_* encode/decode helpers to convert to host order. The
 *   u64 words that CAS64 and FETCH_ADD64 operate on are little-endian in the
 *   served memory too, so READ/WRITE of those 8 bytes sees the same value.
 *
 * Requests (payload that follows the request header):
 *   READ         length = bytes to read (<= AMW_MAX_PAYLOAD); no payload.
 *                Response payload: `length` bytes.
 *   WRITE        length = bytes to write (<= AMW_MAX_PAYLOAD); payload: those bytes.
 *                Response payload: none.
 *   CAS64        addr 8-aligned, length = 8; payload: expected u64, desired u64.
 *                Response payload: the old u64; flag AMW_RF_SWAPPED set when
 *                the swap happened (old == expected).
 *   FETCH_ADD64  addr 8-aligned, length = 8; payload: delta u64 (wrapping add).
 *                Response payload: the old u64.
 *   STAT         length = 0; no payload. Response payload: AMW_STAT_COUNT u64
 *                counters in enum amw_stat order.
 *
 * Device requests (the network device space, /remotedev/<machine>/<dev>).
 *   Every device request's payload starts with a AMW_DEV_NAME_SIZE (64) byte
 *   name field: the device name ([a-z0-9][a-z0-9._-]{0,62}), NUL-padded to 64
 *   bytes. addr is a byte offset in the device. A name that is not valid (bad
 *   character, not NUL-terminated, bytes after the NUL not zero) is answered
 *   E_BAD_REQUEST (framing stays intact); a name the server does not export is
 *   E_NO_DEVICE.
 *   DEVICE_READ  length = bytes to read (<= AMW_MAX_PAYLOAD); payload: name.
 *                Response payload: `length` bytes ([addr, addr+length) must lie
 *                inside the device, else E_OUT_OF_RANGE).
 *   DEVICE_WRITE length = bytes to write (<= AMW_MAX_PAYLOAD); payload: name,
 *                then those bytes. E_READ_ONLY on a device exported `ro`.
 *                Response payload: none.
 *   DEVICE_STAT  addr = 0, length = 0; payload: name. Response payload:
 *                struct amw_dev_stat (16 bytes: size u64, flags u32, block u32).
 *   DEVICE_FSYNC addr = 0, length = 0; payload: name. Flushes the device to
 *                stable storage (fsync); a no-op success on a `ro` device.
 *                Response payload: none.
 *   A failed pread/pwrite/fsync on the owner is E_IO.
 *
 * Errors
 *   status is 0 or one of enum amw_status. A request with an error status has
 *   an empty response payload. Limits are checked on the header alone, before
 *   anything is allocated; a WRITE refused with E_TOO_LARGE has its payload
 *   discarded as it streams in (never buffered), and the connection goes on.
 *   A header whose magic, version or reserved field is wrong, or whose opcode
 *   is unknown, cannot be framed: the server answers E_BAD_REQUEST or
 *   E_UNSUPPORTED (echoing whatever request id it read) and closes the
 *   connection after flushing earlier responses. So does a DEVICE_WRITE whose
 *   length + AMW_DEV_NAME_SIZE does not fit 32 bits (E_TOO_LARGE, fatal).
 */
#ifndef AMALGAM_WIRE_H
#define AMALGAM_WIRE_H

#include <endian.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define AMW_MAGIC 0x474c4d41u /* "AMLG" as bytes on the wire */
#define AMW_VERSION 1u
#define AMW_MAX_PAYLOAD (1u << 20) /* 1 MiB: the largest READ or WRITE */

enum amw_opcode {
  AMW_OP_READ = 1,
  AMW_OP_WRITE = 2,
  AMW_OP_CAS64 = 3,
  AMW_OP_FETCH_ADD64 = 4,
  AMW_OP_STAT = 5,
  AMW_OP_DEVICE_READ = 6,
  AMW_OP_DEVICE_WRITE = 7,
  AMW_OP_DEVICE_STAT = 8,
  AMW_OP_DEVICE_FSYNC = 9,
};

enum amw_status {
  AMW_OK = 0,
  AMW_E_BAD_REQUEST = 1,  /* malformed header or fields that contradict the opcode */
  AMW_E_UNSUPPORTED = 2,  /* unknown opcode */
  AMW_E_OUT_OF_RANGE = 3, /* [addr, addr+length) not inside the served range */
  AMW_E_TOO_LARGE = 4,    /* length > AMW_MAX_PAYLOAD */
  AMW_E_UNALIGNED = 5,    /* CAS64 / FETCH_ADD64 address not 8-aligned */
  AMW_E_NO_DEVICE = 6,    /* device requests: the name is not exported here (EACCES) */
  AMW_E_READ_ONLY = 7,    /* DEVICE_WRITE to a device exported `ro` (EROFS) */
  AMW_E_IO = 8,           /* the owner's pread/pwrite/fsync failed (EIO) */
};

/* Device requests: the name field at the start of the payload. */
#define AMW_DEV_NAME_SIZE 64u
/* DEVICE_STAT response payload (little-endian on the wire). */
struct __attribute__((packed)) amw_dev_stat {
  uint64_t size;       /* bytes; 0 for an unsized (character) device */
  uint32_t flags;      /* AMW_DEVF_* */
  uint32_t block_size; /* preferred I/O alignment in bytes (4096) */
};
_Static_assert(sizeof(struct amw_dev_stat) == 16, "device stat is 16 bytes");
#define AMW_DEVF_RO 0x1u      /* exported read-only */
#define AMW_DEVF_UNSIZED 0x2u /* a character device: no size, offsets not bounds-checked */

/* 1 when s is a valid device name: [a-z0-9][a-z0-9._-]{0,62}. */
static inline int amw_dev_name_valid(const char *s, size_t n) {
  if (n == 0 || n >= AMW_DEV_NAME_SIZE) return 0;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    int ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
             (i > 0 && (c == '.' || c == '_' || c == '-'));
    if (!ok) return 0;
  }
  return 1;
}

/*
 * Validate the name field of a device request (AMW_DEV_NAME_SIZE bytes at p)
 * and copy it, NUL-terminated, to name (AMW_DEV_NAME_SIZE bytes). Returns 0 or
 * -EINVAL (the caller answers E_BAD_REQUEST).
 */
static inline int amw_dev_name_decode(const uint8_t *p, char *name) {
  size_t n = 0;
  while (n < AMW_DEV_NAME_SIZE && p[n] != 0) n++;
  if (n == AMW_DEV_NAME_SIZE) return -EINVAL;
  for (size_t i = n; i < AMW_DEV_NAME_SIZE; i++)
    if (p[i] != 0) return -EINVAL;
  if (!amw_dev_name_valid((const char *)p, n)) return -EINVAL;
  memcpy(name, p, n + 1);
  return 0;
}

/* 1 for the device opcodes. */
static inline int amw_is_device_op(uint8_t opcode) {
  return opcode >= AMW_OP_DEVICE_READ && opcode <= AMW_OP_DEVICE_FSYNC;
}

/* Request flags: none defined in version 1; must be 0. */
/* Response flags. */
#define AMW_RF_SWAPPED 0x0001u /* CAS64: the swap happened */

struct __attribute__((packed)) amw_req_header {
  uint32_t magic;      /* AMW_MAGIC */
  uint8_t version;     /* AMW_VERSION */
  uint8_t opcode;      /* enum amw_opcode */
  uint16_t flags;      /* 0 */
  uint64_t request_id; /* chosen by the client, echoed in the response */
  uint64_t addr;       /* global address */
  uint32_t length;     /* see the opcode table */
  uint32_t reserved;   /* 0 */
};
_Static_assert(sizeof(struct amw_req_header) == 32, "request header is 32 bytes");

struct __attribute__((packed)) amw_resp_header {
  uint32_t magic;      /* AMW_MAGIC */
  uint8_t version;     /* AMW_VERSION */
  uint8_t opcode;      /* echoed */
  uint16_t flags;      /* AMW_RF_* */
  uint64_t request_id; /* echoed */
  uint32_t status;     /* enum amw_status */
  uint32_t length;     /* payload bytes that follow */
  uint64_t reserved;   /* 0 */
};
_Static_assert(sizeof(struct amw_resp_header) == 32, "response header is 32 bytes");

#define AMW_REQ_HEADER_SIZE 32u
#define AMW_RESP_HEADER_SIZE 32u

/* STAT counters, in payload order. Append only; never reorder. */
enum amw_stat {
  AMW_STAT_REQ_READ = 0,
  AMW_STAT_REQ_WRITE,
  AMW_STAT_REQ_CAS64,
  AMW_STAT_REQ_FETCH_ADD64,
  AMW_STAT_REQ_STAT,
  AMW_STAT_REQ_INVALID, /* requests with an unknown opcode or a bad header */
  AMW_STAT_BYTES_READ,
  AMW_STAT_BYTES_WRITTEN,
  AMW_STAT_ERRORS, /* responses with a non-zero status */
  AMW_STAT_CONN_ACCEPTED,
  AMW_STAT_CONN_OPEN,
  AMW_STAT_RANGE_START,
  AMW_STAT_RANGE_SIZE,
  AMW_STAT_COUNT
};

/* A decoded request header (host byte order) and what to do with it. */
struct amw_req {
  uint8_t opcode;
  uint16_t flags;
  uint64_t request_id;
  uint64_t addr;
  uint32_t length;
  uint32_t payload_len; /* bytes following the header on the wire */
  uint32_t status;      /* AMW_OK, or the error to answer without executing */
  int fatal;            /* framing lost: answer, then close the connection */
};

/*
 * Decode the request header at buf (avail bytes available).
 * Returns -EAGAIN when fewer than AMW_REQ_HEADER_SIZE bytes are available,
 * else 0 with *out filled. Never allocates; checks every limit on the header.
 * When out->status != 0 and !out->fatal, the caller answers the error and
 * skips out->payload_len bytes without buffering them.
 */
static inline int amw_decode_request(const void *buf, size_t avail, struct amw_req *out) {
  struct amw_req_header h;
  if (avail < AMW_REQ_HEADER_SIZE) return -EAGAIN;
  memcpy(&h, buf, sizeof h);
  out->opcode = h.opcode;
  out->flags = le16toh(h.flags);
  out->request_id = le64toh(h.request_id);
  out->addr = le64toh(h.addr);
  out->length = le32toh(h.length);
  out->payload_len = 0;
  out->status = AMW_OK;
  out->fatal = 0;
  if (le32toh(h.magic) != AMW_MAGIC || h.version != AMW_VERSION || h.reserved != 0 ||
      out->flags != 0) {
    out->status = AMW_E_BAD_REQUEST;
    out->fatal = 1;
    return 0;
  }
  switch (out->opcode) {
  case AMW_OP_READ:
    if (out->length > AMW_MAX_PAYLOAD) out->status = AMW_E_TOO_LARGE;
    break;
  case AMW_OP_WRITE:
    out->payload_len = out->length;
    if (out->length > AMW_MAX_PAYLOAD) out->status = AMW_E_TOO_LARGE;
    break;
  case AMW_OP_CAS64:
  case AMW_OP_FETCH_ADD64:
    if (out->length != 8) {
      /* the payload size depends only on the opcode, so framing is intact */
      out->status = AMW_E_BAD_REQUEST;
    } else if (out->addr & 7u) {
      out->status = AMW_E_UNALIGNED;
    }
    out->payload_len = out->opcode == AMW_OP_CAS64 ? 16u : 8u;
    break;
  case AMW_OP_STAT:
    if (out->length != 0) out->status = AMW_E_BAD_REQUEST;
    break;
  case AMW_OP_DEVICE_READ:
    out->payload_len = AMW_DEV_NAME_SIZE;
    if (out->length > AMW_MAX_PAYLOAD) out->status = AMW_E_TOO_LARGE;
    break;
  case AMW_OP_DEVICE_WRITE:
    if (out->length > UINT32_MAX - AMW_DEV_NAME_SIZE) {
      /* name + data would not fit payload_len: the stream cannot be framed */
      out->status = AMW_E_TOO_LARGE;
      out->fatal = 1;
      break;
    }
    out->payload_len = AMW_DEV_NAME_SIZE + out->length;
    if (out->length > AMW_MAX_PAYLOAD) out->status = AMW_E_TOO_LARGE;
    break;
  case AMW_OP_DEVICE_STAT:
  case AMW_OP_DEVICE_FSYNC:
    out->payload_len = AMW_DEV_NAME_SIZE;
    if (out->length != 0 || out->addr != 0) out->status = AMW_E_BAD_REQUEST;
    break;
  default:
    out->status = AMW_E_UNSUPPORTED;
    out->fatal = 1;
    break;
  }
  return 0;
}

/* Encode a response header into buf (AMW_RESP_HEADER_SIZE bytes). */
static inline void amw_encode_response(void *buf, uint8_t opcode, uint16_t flags, uint64_t id,
                                       uint32_t status, uint32_t length) {
  struct amw_resp_header h;
  h.magic = htole32(AMW_MAGIC);
  h.version = AMW_VERSION;
  h.opcode = opcode;
  h.flags = htole16(flags);
  h.request_id = htole64(id);
  h.status = htole32(status);
  h.length = htole32(length);
  h.reserved = 0;
  memcpy(buf, &h, sizeof h);
}

/* Encode a request header into buf (AMW_REQ_HEADER_SIZE bytes). */
static inline void amw_encode_request(void *buf, uint8_t opcode, uint64_t id, uint64_t addr,
                                      uint32_t length) {
  struct amw_req_header h;
  h.magic = htole32(AMW_MAGIC);
  h.version = AMW_VERSION;
  h.opcode = opcode;
  h.flags = 0;
  h.request_id = htole64(id);
  h.addr = htole64(addr);
  h.length = htole32(length);
  h.reserved = 0;
  memcpy(buf, &h, sizeof h);
}

#endif /* AMALGAM_WIRE_H */
