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
 * Device requests (DEVICE_READ/WRITE/STAT/FSYNC) run the real devices_execute
 * (pageserver/devices.c) against a table of two 4 KiB memfd-backed devices,
 * "d0" (rw) and "r0" (ro), with a shadow copy of each: name validation,
 * E_NO_DEVICE, E_READ_ONLY, bounds (128-bit), contents, DEVICE_STAT.
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
#include "../pageserver/devices.h"
#include "../pageserver/memrange.h"

#include <sys/mman.h>
#include <unistd.h>

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
#define SLAB_SIZE (AMW_DEV_NAME_SIZE + AMW_MAX_PAYLOAD + AMW_STAT_COUNT * 8)
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

/* The device table: d0 (rw) and r0 (ro), DEV_SIZE bytes each, with shadows. */
#define DEV_SIZE 4096u
#define NDEVS 2
static struct device devs[NDEVS];
static struct devtable dtable = {devs, NDEVS};
static uint8_t dev_shadow[NDEVS][DEV_SIZE];
static uint8_t *bounce;
static int devs_dirty = 1; /* a DEVICE_WRITE was executed since the last reset */

static void init_devices(void) {
  static const char *names[NDEVS] = {"d0", "r0"};
  for (int i = 0; i < NDEVS; i++) {
    struct device *d = &devs[i];
    memset(d, 0, sizeof *d);
    strcpy(d->name, names[i]);
    d->ro = i == 1;
    d->fd = memfd_create(names[i], MFD_CLOEXEC);
    CHECK(d->fd >= 0 && ftruncate(d->fd, DEV_SIZE) == 0);
    d->kind = DEVICE_REGULAR;
    d->size = DEV_SIZE;
  }
  bounce = devices_bounce_alloc();
  CHECK(bounce != NULL);
}

static void reset_devices(void) {
  static uint8_t zero[DEV_SIZE];
  if (!devs_dirty) return; /* untouched: still all zero (checked at the end of each input) */
  devs_dirty = 0;
  for (int i = 0; i < NDEVS; i++) {
    CHECK(pwrite(devs[i].fd, zero, DEV_SIZE, 0) == (ssize_t)DEV_SIZE);
    memset(dev_shadow[i], 0, DEV_SIZE);
  }
}

static void init_once(void) {
  static int done;
  if (done) return;
  done = 1;
  init_devices();
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
  case AMW_OP_DEVICE_READ:
  case AMW_OP_DEVICE_WRITE:
  case AMW_OP_DEVICE_STAT:
  case AMW_OP_DEVICE_FSYNC: return -1; /* no counter of their own */
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
  case AMW_OP_DEVICE_READ:
    CHECK(!r->fatal && r->payload_len == AMW_DEV_NAME_SIZE);
    CHECK(r->status == (length > AMW_MAX_PAYLOAD ? AMW_E_TOO_LARGE : AMW_OK));
    break;
  case AMW_OP_DEVICE_WRITE:
    if ((uint64_t)length + AMW_DEV_NAME_SIZE > UINT32_MAX) {
      CHECK(r->fatal && r->status == AMW_E_TOO_LARGE && r->payload_len == 0);
    } else {
      CHECK(!r->fatal && r->payload_len == AMW_DEV_NAME_SIZE + length);
      CHECK(r->status == (length > AMW_MAX_PAYLOAD ? AMW_E_TOO_LARGE : AMW_OK));
    }
    break;
  case AMW_OP_DEVICE_STAT:
  case AMW_OP_DEVICE_FSYNC:
    CHECK(!r->fatal && r->payload_len == AMW_DEV_NAME_SIZE);
    CHECK(r->status == (length != 0 || addr != 0 ? AMW_E_BAD_REQUEST : AMW_OK));
    break;
  default:
    CHECK(r->fatal && r->status == AMW_E_UNSUPPORTED && r->payload_len == 0);
    break;
  }
}

/* Independent name check: NUL-padded [a-z0-9][a-z0-9._-]{0,62}; the device index or -1/-2. */
static int model_name(const uint8_t *p) {
  size_t n = 0;
  while (n < AMW_DEV_NAME_SIZE && p[n]) n++;
  if (n == 0 || n == AMW_DEV_NAME_SIZE) return -2;
  for (size_t i = n; i < AMW_DEV_NAME_SIZE; i++)
    if (p[i]) return -2;
  for (size_t i = 0; i < n; i++) {
    uint8_t c = p[i];
    int alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    if (!(alnum || (i > 0 && (c == '.' || c == '_' || c == '-')))) return -2;
  }
  if (n == 2 && memcmp(p, "d0", 2) == 0) return 0;
  if (n == 2 && memcmp(p, "r0", 2) == 0) return 1;
  return -1;
}

/* Run one accepted device request (against targets[0]'s counters) and check it. */
static void execute_device(const struct amw_req *r, const uint8_t *payload) {
  struct target *t = &targets[0];
  size_t out_max = r->opcode == AMW_OP_DEVICE_READ ? r->length : AMW_STAT_COUNT * 8;
  uint8_t *out = out_slab + (SLAB_SIZE - out_max);
  uint32_t status = 0xdeadbeef, out_len = 0xdeadbeef;
  if (r->opcode == AMW_OP_DEVICE_WRITE) devs_dirty = 1; /* whatever the outcome: verify the files */
  devices_execute(&dtable, bounce, &t->mr, r, payload, out, &status, &out_len);
  CHECK(out_len <= out_max);
  int idx = model_name(payload);
  uint32_t want = AMW_OK;
  unsigned __int128 end = (unsigned __int128)r->addr + r->length;
  if (idx == -2) want = AMW_E_BAD_REQUEST;
  else if (idx == -1) want = AMW_E_NO_DEVICE;
  else if (r->opcode == AMW_OP_DEVICE_WRITE && devs[idx].ro) want = AMW_E_READ_ONLY;
  else if ((r->opcode == AMW_OP_DEVICE_READ || r->opcode == AMW_OP_DEVICE_WRITE) && end > DEV_SIZE)
    want = AMW_E_OUT_OF_RANGE;
  CHECK(status == want);
  if (status != AMW_OK) {
    CHECK(out_len == 0);
    t->stats[AMW_STAT_ERRORS]++;
    return;
  }
  switch (r->opcode) {
  case AMW_OP_DEVICE_READ:
    CHECK(out_len == r->length && memcmp(out, dev_shadow[idx] + r->addr, r->length) == 0);
    t->stats[AMW_STAT_BYTES_READ] += r->length;
    break;
  case AMW_OP_DEVICE_WRITE:
    CHECK(out_len == 0);
    memcpy(dev_shadow[idx] + r->addr, payload + AMW_DEV_NAME_SIZE, r->length);
    t->stats[AMW_STAT_BYTES_WRITTEN] += r->length;
    break;
  case AMW_OP_DEVICE_STAT: {
    CHECK(out_len == sizeof(struct amw_dev_stat));
    struct amw_dev_stat st;
    memcpy(&st, out, sizeof st);
    CHECK(le64toh(st.size) == DEV_SIZE && le32toh(st.flags) == (devs[idx].ro ? AMW_DEVF_RO : 0u));
    break;
  }
  case AMW_OP_DEVICE_FSYNC: CHECK(out_len == 0); break;
  default: CHECK(0 && "not a device opcode");
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
  reset_devices();
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
        int st = r.fatal ? AMW_STAT_REQ_INVALID : stat_for(r.opcode);
        if (st >= 0) targets[i].stats[st]++;
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
    if (amw_is_device_op(r.opcode)) execute_device(&r, payload);
    else
      for (int i = 0; i < NRANGES; i++) execute(&targets[i], &r, payload);
    pos += r.payload_len;
  }
  for (int i = 0; devs_dirty && i < NDEVS; i++) {
    static uint8_t now[DEV_SIZE];
    CHECK(pread(devs[i].fd, now, DEV_SIZE, 0) == (ssize_t)DEV_SIZE);
    CHECK(memcmp(now, dev_shadow[i], DEV_SIZE) == 0);
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
