/*
 * request_fuzz.c - fuzz target for the request parser and executor: the input
 * is a byte stream as a client would send it; it is framed and executed the way
 * the server does, against a small range. libFuzzer entry point; build with
 * `make fuzz` (clang). `make fuzz-standalone` builds a gcc ASan/UBSan driver
 * that runs the files given on the command line (a replay driver, not a fuzzer).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "../include/amalgam_wire.h"
#include "../pageserver/memrange.h"

static struct memrange range;
static uint8_t out[AMW_MAX_PAYLOAD + AMW_STAT_COUNT * 8];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!range.base && memrange_open(&range, 0x10000, 64 * 1024) < 0) abort();
  size_t pos = 0;
  while (pos < size) {
    struct amw_req r;
    if (amw_decode_request(data + pos, size - pos, &r) < 0) break;
    pos += AMW_REQ_HEADER_SIZE;
    if (r.fatal) break;
    if (r.payload_len > size - pos) break;
    if (r.status == AMW_OK) {
      uint32_t status, out_len;
      uint16_t flags;
      memrange_execute(&range, &r, data + pos, out, &status, &flags, &out_len);
      if (out_len > sizeof out) abort();
    }
    pos += r.payload_len;
  }
  return 0;
}

#ifdef AMW_FUZZ_STANDALONE
int main(int argc, char **argv) {
  static uint8_t buf[4 * 1024 * 1024];
  for (int i = 1; i < argc; i++) {
    FILE *f = fopen(argv[i], "rb");
    if (!f) continue;
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    LLVMFuzzerTestOneInput(buf, n);
  }
  return 0;
}
#endif
