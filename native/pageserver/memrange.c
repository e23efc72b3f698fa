/* memrange.c - see memrange.h. */
#include "memrange.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "CAS64/FETCH_ADD64 operate on native words, which must be little-endian like the wire"
#endif

int memrange_open(struct memrange *mr, uint64_t start, uint64_t size) {
  memset(mr, 0, sizeof *mr);
  if (size == 0 || size > SIZE_MAX) return -EINVAL;
  if (start & 7u) return -EINVAL;               /* words must be 8-aligned locally */
  if (start + size < start) return -EOVERFLOW; /* the range must not wrap */
  void *p = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) return -errno;
  mr->start = start;
  mr->size = size;
  mr->base = p;
#ifdef MADV_HUGEPAGE
  mr->hugepages = madvise(p, (size_t)size, MADV_HUGEPAGE) == 0;
#endif
  mr->stats[AMW_STAT_RANGE_START] = start;
  mr->stats[AMW_STAT_RANGE_SIZE] = size;
  return 0;
}

void memrange_close(struct memrange *mr) {
  if (mr->base) munmap(mr->base, (size_t)mr->size);
  mr->base = NULL;
}

int memrange_contains(const struct memrange *mr, uint64_t addr, uint64_t len) {
  if (addr < mr->start) return 0;
  uint64_t off = addr - mr->start;
  return off <= mr->size && len <= mr->size - off;
}

static void count_opcode(struct memrange *mr, uint8_t opcode) {
  switch (opcode) {
  case AMW_OP_READ: mr->stats[AMW_STAT_REQ_READ]++; break;
  case AMW_OP_WRITE: mr->stats[AMW_STAT_REQ_WRITE]++; break;
  case AMW_OP_CAS64: mr->stats[AMW_STAT_REQ_CAS64]++; break;
  case AMW_OP_FETCH_ADD64: mr->stats[AMW_STAT_REQ_FETCH_ADD64]++; break;
  case AMW_OP_STAT: mr->stats[AMW_STAT_REQ_STAT]++; break;
  case AMW_OP_DEVICE_READ:
  case AMW_OP_DEVICE_WRITE:
  case AMW_OP_DEVICE_STAT:
  case AMW_OP_DEVICE_FSYNC: break; /* device requests have no STAT counter of their own */
  default: mr->stats[AMW_STAT_REQ_INVALID]++; break;
  }
}

void memrange_count_refused(struct memrange *mr, const struct amw_req *req) {
  if (req->fatal) mr->stats[AMW_STAT_REQ_INVALID]++;
  else count_opcode(mr, req->opcode);
  mr->stats[AMW_STAT_ERRORS]++;
}

static uint64_t load_le64(const uint8_t *p) {
  uint64_t v;
  memcpy(&v, p, 8);
  return le64toh(v);
}

static void store_le64(uint8_t *p, uint64_t v) {
  v = htole64(v);
  memcpy(p, &v, 8);
}

int memrange_execute(struct memrange *mr, const struct amw_req *req, const uint8_t *payload,
                     uint8_t *out, uint32_t *status, uint16_t *flags, uint32_t *out_len) {
  *status = AMW_OK;
  *flags = 0;
  *out_len = 0;
  count_opcode(mr, req->opcode);
  uint64_t span = req->opcode == AMW_OP_STAT ? 0 : req->length;
  if (req->opcode != AMW_OP_STAT && !memrange_contains(mr, req->addr, span)) {
    *status = AMW_E_OUT_OF_RANGE;
    mr->stats[AMW_STAT_ERRORS]++;
    return 0;
  }
  /* STAT ignores addr (unchecked above): do not form a pointer from it. */
  uint8_t *p = req->opcode == AMW_OP_STAT ? mr->base : mr->base + (req->addr - mr->start);
  switch (req->opcode) {
  case AMW_OP_READ:
    memcpy(out, p, req->length);
    *out_len = req->length;
    mr->stats[AMW_STAT_BYTES_READ] += req->length;
    break;
  case AMW_OP_WRITE:
    memcpy(p, payload, req->length);
    mr->stats[AMW_STAT_BYTES_WRITTEN] += req->length;
    break;
  case AMW_OP_CAS64: {
    uint64_t expected = load_le64(payload);
    uint64_t desired = load_le64(payload + 8);
    uint64_t *word = (uint64_t *)(void *)p; /* 8-aligned: checked by the decoder */
    uint64_t old = expected;
    if (__atomic_compare_exchange_n(word, &old, desired, 0, __ATOMIC_SEQ_CST,
                                    __ATOMIC_SEQ_CST)) {
      *flags = AMW_RF_SWAPPED;
      old = expected;
    }
    store_le64(out, old);
    *out_len = 8;
    break;
  }
  case AMW_OP_FETCH_ADD64: {
    uint64_t *word = (uint64_t *)(void *)p;
    uint64_t old = __atomic_fetch_add(word, load_le64(payload), __ATOMIC_SEQ_CST);
    store_le64(out, old);
    *out_len = 8;
    break;
  }
  case AMW_OP_STAT:
    for (int i = 0; i < AMW_STAT_COUNT; i++) store_le64(out + 8 * i, mr->stats[i]);
    *out_len = AMW_STAT_COUNT * 8;
    break;
  default:
    *status = AMW_E_UNSUPPORTED;
    mr->stats[AMW_STAT_ERRORS]++;
    break;
  }
  return 0;
}
