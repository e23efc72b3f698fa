/* wire_test.c - unit tests of the request decoder and of memrange_execute (no sockets). */
#include <stdio.h>
#include <stdlib.h>

#include "../include/amalgam_wire.h"
#include "../pageserver/memrange.h"

#include "check.h"

static struct amw_req decode(uint8_t op, uint64_t addr, uint32_t len) {
  uint8_t buf[AMW_REQ_HEADER_SIZE];
  struct amw_req r;
  amw_encode_request(buf, op, 42, addr, len);
  CHECK(amw_decode_request(buf, sizeof buf, &r) == 0);
  CHECK(r.request_id == 42);
  return r;
}

int main(void) {
  uint8_t buf[AMW_REQ_HEADER_SIZE];
  struct amw_req r;
  amw_encode_request(buf, AMW_OP_READ, 1, 0, 8);
  CHECK(amw_decode_request(buf, AMW_REQ_HEADER_SIZE - 1, &r) == -EAGAIN);

  r = decode(AMW_OP_READ, 0, AMW_MAX_PAYLOAD);
  CHECK(r.status == AMW_OK && r.payload_len == 0);
  r = decode(AMW_OP_READ, 0, AMW_MAX_PAYLOAD + 1);
  CHECK(r.status == AMW_E_TOO_LARGE && !r.fatal);
  r = decode(AMW_OP_WRITE, 0, AMW_MAX_PAYLOAD + 1);
  CHECK(r.status == AMW_E_TOO_LARGE && !r.fatal && r.payload_len == AMW_MAX_PAYLOAD + 1);
  r = decode(AMW_OP_CAS64, 4, 8);
  CHECK(r.status == AMW_E_UNALIGNED && r.payload_len == 16);
  r = decode(AMW_OP_FETCH_ADD64, 8, 4);
  CHECK(r.status == AMW_E_BAD_REQUEST && r.payload_len == 8 && !r.fatal);
  r = decode(99, 0, 0);
  CHECK(r.status == AMW_E_UNSUPPORTED && r.fatal);
  amw_encode_request(buf, AMW_OP_READ, 1, 0, 8);
  buf[0] ^= 0xff;
  CHECK(amw_decode_request(buf, sizeof buf, &r) == 0 && r.status == AMW_E_BAD_REQUEST && r.fatal);

  struct memrange mr;
  CHECK(memrange_open(&mr, 3, 4096) == -EINVAL);
  CHECK(memrange_open(&mr, UINT64_MAX - 4095, 8192) == -EOVERFLOW);
  CHECK(memrange_open(&mr, 0x200000, 4096) == 0);
  CHECK(memrange_contains(&mr, 0x200000, 4096));
  CHECK(!memrange_contains(&mr, 0x200000, 4097));
  CHECK(!memrange_contains(&mr, 0x1fffff, 1));
  CHECK(!memrange_contains(&mr, UINT64_MAX, 2));

  uint8_t out[AMW_STAT_COUNT * 8], payload[16];
  uint32_t status, out_len;
  uint16_t flags;
  r = decode(AMW_OP_FETCH_ADD64, 0x200ff8, 8);
  uint64_t delta = htole64(5);
  memcpy(payload, &delta, 8);
  memrange_execute(&mr, &r, payload, out, &status, &flags, &out_len);
  memrange_execute(&mr, &r, payload, out, &status, &flags, &out_len);
  uint64_t old;
  memcpy(&old, out, 8);
  CHECK(status == AMW_OK && out_len == 8 && le64toh(old) == 5);
  r = decode(AMW_OP_CAS64, 0x200ff8, 8);
  uint64_t cas[2] = {htole64(10), htole64(11)};
  memcpy(payload, cas, 16);
  memrange_execute(&mr, &r, payload, out, &status, &flags, &out_len);
  memcpy(&old, out, 8);
  CHECK(status == AMW_OK && (flags & AMW_RF_SWAPPED) && le64toh(old) == 10);
  memrange_execute(&mr, &r, payload, out, &status, &flags, &out_len);
  memcpy(&old, out, 8);
  CHECK(status == AMW_OK && !(flags & AMW_RF_SWAPPED) && le64toh(old) == 11);
  r = decode(AMW_OP_FETCH_ADD64, 0x201000, 8);
  memrange_execute(&mr, &r, payload, out, &status, &flags, &out_len);
  CHECK(status == AMW_E_OUT_OF_RANGE && out_len == 0);
  CHECK(mr.stats[AMW_STAT_REQ_FETCH_ADD64] == 3 && mr.stats[AMW_STAT_REQ_CAS64] == 2);
  CHECK(mr.stats[AMW_STAT_ERRORS] == 1);
  memrange_close(&mr);

  if (failures) {
    fprintf(stderr, "wire_test: %d failure(s)\n", failures);
    return 1;
  }
  printf("wire_test: ok\n");
  return 0;
}
