/*
 * request_fuzz.c - fuzz target for the request parser and executor.
 *
 * The input is a byte stream as a client would send it on one connection. It
 * is framed with the real decoder (amw_decode_request, include/amalgam_wire.h)
 * and executed with the real executor (memrange_execute, pageserver/memrange.c)
 * the way pageserver/server.c does: refused requests are counted with
 * memrange_count_refused and their payload skipped, a fatal header ends the
 * stream, and the output buffer is sized exactly as the server reserves it.
 *
 * Every request runs against two small ranges: one low in the address space and
 * one just below 2^64, so address + length overflows are reachable. To let
 * ASan see any access outside the range, the ranges opened by memrange_open
 * are rebased onto heap buffers of exactly their size; payloads and output
 * buffers end exactly where a heap allocation ends (see SLAB_SIZE). A shadow model checks
 * what the executor did: range checks (computed with 128-bit arithmetic),
 * alignment of CAS64/FETCH_ADD64, response lengths, READ contents, CAS/add
 * results, STAT counters, and that memory outside a successful write never
 * changes. Any disagreement aborts, which libFuzzer reports as a crash.
 *
 * `make fuzz` builds the libFuzzer binary (clang, ASan + UBSan);
 * `make fuzz-standalone` builds a gcc ASan/UBSan driver that replays the files
 * given on the command line (a replay driver, not a fuzzer).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../include/amalgam_wire.h"
#include "../pageserver/memrange.h"

#define RANGE_SIZE 4096u
#define NRANGES 2

struct target {
  struct memrange tmpl; /* as memrange_open left it (stats included) */
  struct memrange mr;   /* reset from tmpl at each input */
  uint8_t *mem;         /* heap buffer of exactly RANGE_SIZE bytes: mr.base */
  uint8_t shadow[RANGE_SIZE];
  uint64_t stats[AMW_STAT_COUNT];
};

static struct target targets[NRANGES];
/*
 * Output and payload buffers: one heap allocation each, handed out as the LAST
 * n bytes, so a write or read one byte past n hits ASan's redzone just as an
 * exact malloc(n) would, without a (slow, mmap-backed) 1 MiB malloc per READ.
 */
#define SLAB_SIZE (AMW_MAX_PAYLOAD + AMW_STAT_COUNT * 8)
static uint8_t *out_slab, *payload_slab;
static const uint64_t starts[NRANGES] = {
    0x10000u,
    UINT64_MAX - 2 * (uint64_t)RANGE_SIZE + 1, /* ends RANGE_SIZE below 2^64 */
};

#define CHECK(cond)                                                                     \
  do {                                                                                  \
    if (!(cond)) {                                                                      \
      fprintf(stderr, "request_fuzz: check failed at line %d: %s\n", __LINE__, #cond); \
      abort();                                                                          \
    }                                                                                   \
  } while (0)

static void init_once(void) {
  static int done;
  if (done) return;
  done = 1;
  for (int i = 0; i < NRANGES; i++) {
    struct target *t = &targets[i];
    CHECK(memrange_open(&t->tmpl, starts[i], RANGE_SIZE) == 0);
    /* The mapping is replaced by an exact-size heap buffer ASan can guard. */
    memrange_close(&t->tmpl);
    t->mem = malloc(RANGE_SIZE);
    CHECK(t->mem != NULL);
  }
  out_slab = malloc(SLAB_SIZE);
  payload_slab = malloc(SLAB_SIZE);
  CHECK(out_slab != NULL && payload_slab != NULL);
}

static void reset(struct target *t) {
  t->mr = t->tmpl;
  t->mr.base = t->mem;
  memset(t->mem, 0, RANGE_SIZE);
  memset(t->shadow, 0, RANGE_SIZE);
  memcpy(t->stats, t->tmpl.stats, sizeof t->stats);
}

static uint64_t get_le64(const uint8_t *p) {
  uint64_t v;
  memcpy(&v, p, 8);
  return le64toh(v);
}

static void put_le64(uint8_t *p, uint64_t v) {
  v = htole64(v);
  memcpy(p, &v, 8);
}

static int stat_for(uint8_t opcode) {
  switch (opcode) {
  case AMW_OP_READ: return AMW_STAT_REQ_READ;
  case AMW_OP_WRITE: return AMW_STAT_REQ_WRITE;
  case AMW_OP_CAS64: return AMW_STAT_REQ_CAS64;
  case AMW_OP_FETCH_ADD64: return AMW_STAT_REQ_FETCH_ADD64;
  case AMW_OP_STAT: return AMW_STAT_REQ_STAT;
  default: return AMW_STAT_REQ_INVALID;
  }
}

/* Independent check of the decoder's verdict on the raw header bytes. */
static void check_decoded(const uint8_t *h, const struct amw_req *r) {
  uint32_t magic;
  uint16_t flags;
  uint32_t length, reserved;
  uint64_t addr;
  memcpy(&magic, h, 4);
  memcpy(&flags, h + 6, 2);
  memcpy(&addr, h + 16, 8);
  memcpy(&length, h + 24, 4);
  memcpy(&reserved, h + 28, 4);
  magic = le32toh(magic);
  flags = le16toh(flags);
  addr = le64toh(addr);
  length = le32toh(length);
  CHECK(r->opcode == h[5] && r->addr == addr && r->length == length);
  if (magic != AMW_MAGIC || h[4] != AMW_VERSION || reserved != 0 || flags != 0) {
    CHECK(r->fatal && r->status == AMW_E_BAD_REQUEST && r->payload_len == 0);
    return;
  }
  switch (h[5]) {
  case AMW_OP_READ:
    CHECK(!r->fatal && r->payload_len == 0);
    CHECK(r->status == (length > AMW_MAX_PAYLOAD ? AMW_E_TOO_LARGE : AMW_OK));
    break;
  case AMW_OP_WRITE:
    CHECK(!r->fatal && r->payload_len == length);
    CHECK(r->status == (length > AMW_MAX_PAYLOAD ? AMW_E_TOO_LARGE : AMW_OK));
    break;
  case AMW_OP_CAS64:
  case AMW_OP_FETCH_ADD64:
    CHECK(!r->fatal && r->payload_len == (h[5] == AMW_OP_CAS64 ? 16u : 8u));
    CHECK(r->status == (length != 8     ? AMW_E_BAD_REQUEST
                        : (addr & 7u)   ? AMW_E_UNALIGNED
                                        : AMW_OK));
    break;
  case AMW_OP_STAT:
    CHECK(!r->fatal && r->payload_len == 0);
    CHECK(r->status == (length != 0 ? AMW_E_BAD_REQUEST : AMW_OK));
    break;
  default:
    CHECK(r->fatal && r->status == AMW_E_UNSUPPORTED && r->payload_len == 0);
    break;
  }
}

/* Run one decoded, accepted request against t and check it against the model. */
static void execute(struct target *t, const struct amw_req *r, const uint8_t *payload) {
  /* server.c reserves exactly this much response payload space */
  size_t out_max = r->opcode == AMW_OP_READ ? r->length : AMW_STAT_COUNT * 8;
  CHECK(out_max <= SLAB_SIZE);
  uint8_t *out = out_slab + (SLAB_SIZE - out_max);
  uint32_t status = 0xdeadbeef, out_len = 0xdeadbeef;
  uint16_t flags = 0xbeef;
  CHECK(memrange_execute(&t->mr, r, payload, out, &status, &flags, &out_len) == 0);
  CHECK(out_len <= out_max && out_len <= AMW_MAX_PAYLOAD);

  t->stats[stat_for(r->opcode)]++;
  unsigned __int128 lo = t->mr.start, hi = (unsigned __int128)t->mr.start + t->mr.size;
  int inside = r->addr >= lo && (unsigned __int128)r->addr + r->length <= hi;
  CHECK(memrange_contains(&t->mr, r->addr, r->length) == inside);
  if (r->opcode != AMW_OP_STAT && !inside) {
    CHECK(status == AMW_E_OUT_OF_RANGE && out_len == 0 && flags == 0);
    t->stats[AMW_STAT_ERRORS]++;
    return;
  }
  CHECK(status == AMW_OK);
  size_t off = (size_t)(r->addr - t->mr.start);
  switch (r->opcode) {
  case AMW_OP_READ:
    CHECK(out_len == r->length && flags == 0);
    CHECK(memcmp(out, t->shadow + off, r->length) == 0);
    t->stats[AMW_STAT_BYTES_READ] += r->length;
    break;
  case AMW_OP_WRITE:
    CHECK(out_len == 0 && flags == 0);
    memcpy(t->shadow + off, payload, r->length);
    t->stats[AMW_STAT_BYTES_WRITTEN] += r->length;
    break;
  case AMW_OP_CAS64: {
    CHECK((r->addr & 7u) == 0 && off % 8 == 0 && out_len == 8);
    uint64_t old = get_le64(t->shadow + off);
    uint64_t expected = get_le64(payload), desired = get_le64(payload + 8);
    CHECK(get_le64(out) == old);
    CHECK(flags == (old == expected ? AMW_RF_SWAPPED : 0));
    if (old == expected) put_le64(t->shadow + off, desired);
    break;
  }
  case AMW_OP_FETCH_ADD64: {
    CHECK((r->addr & 7u) == 0 && off % 8 == 0 && out_len == 8 && flags == 0);
    uint64_t old = get_le64(t->shadow + off);
    CHECK(get_le64(out) == old);
    put_le64(t->shadow + off, old + get_le64(payload));
    break;
  }
  case AMW_OP_STAT:
    CHECK(out_len == AMW_STAT_COUNT * 8 && flags == 0);
    for (int i = 0; i < AMW_STAT_COUNT; i++) CHECK(get_le64(out + 8 * i) == t->stats[i]);
    break;
  default: CHECK(0 && "the decoder accepted an unknown opcode");
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  init_once();
  for (int i = 0; i < NRANGES; i++) reset(&targets[i]);
  size_t pos = 0;
  while (pos < size) {
    struct amw_req r;
    if (amw_decode_request(data + pos, size - pos, &r) < 0) {
      CHECK(size - pos < AMW_REQ_HEADER_SIZE);
      break; /* the server waits for the rest of the header */
    }
    check_decoded(data + pos, &r);
    pos += AMW_REQ_HEADER_SIZE;
    if (r.status != AMW_OK) {
      for (int i = 0; i < NRANGES; i++) {
        memrange_count_refused(&targets[i].mr, &r);
        targets[i].stats[r.fatal ? AMW_STAT_REQ_INVALID : stat_for(r.opcode)]++;
        targets[i].stats[AMW_STAT_ERRORS]++;
      }
      if (r.fatal) break; /* the server answers and closes the connection */
      pos += r.payload_len < size - pos ? r.payload_len : size - pos; /* skipped */
      continue;
    }
    if (r.payload_len > size - pos) break; /* the server waits for the payload */
    CHECK(r.payload_len <= SLAB_SIZE);
    uint8_t *payload = payload_slab + (SLAB_SIZE - r.payload_len);
    memcpy(payload, data + pos, r.payload_len);
    for (int i = 0; i < NRANGES; i++) execute(&targets[i], &r, payload);
    pos += r.payload_len;
  }
  for (int i = 0; i < NRANGES; i++) {
    struct target *t = &targets[i];
    CHECK(memcmp(t->mem, t->shadow, RANGE_SIZE) == 0);
    CHECK(memcmp(t->mr.stats, t->stats, sizeof t->stats) == 0);
  }
  return 0;
}

#ifdef AMW_FUZZ_STANDALONE
int main(int argc, char **argv) {
  static uint8_t buf[4 * 1024 * 1024];
  for (int i = 1; i < argc; i++) {
    FILE *f = fopen(argv[i], "rb");
    if (!f) {
      perror(argv[i]);
      return 1;
    }
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    uint8_t *copy = malloc(n ? n : 1); /* exact size, as libFuzzer passes it */
    if (!copy) abort();
    memcpy(copy, buf, n);
    LLVMFuzzerTestOneInput(copy, n);
    free(copy);
    printf("ok %s (%zu bytes)\n", argv[i], n);
  }
  return 0;
}
#endif
