/*
 * memrange.h - the served range of the global address space, backed by
 * anonymous memory, and the execution of decoded requests against it.
 * No sockets here: the server and the fuzz target both drive it.
 */
#ifndef AMALGAM_MEMRANGE_H
#define AMALGAM_MEMRANGE_H

#include <stddef.h>
#include <stdint.h>

#include "../include/amalgam_wire.h"

struct memrange {
  uint64_t start; /* first global address served */
  uint64_t size;  /* bytes served */
  uint8_t *base;  /* local mapping of [start, start + size) */
  int hugepages;  /* MADV_HUGEPAGE was accepted */
  uint64_t stats[AMW_STAT_COUNT];
};

/* Map size bytes of anonymous memory for [start, start + size). */
int memrange_open(struct memrange *mr, uint64_t start, uint64_t size);
void memrange_close(struct memrange *mr);

/* 1 when [addr, addr + len) lies inside the range, else 0 (overflow-safe). */
int memrange_contains(const struct memrange *mr, uint64_t addr, uint64_t len);

/*
 * Execute a decoded request whose status is AMW_OK against the range.
 * payload holds req->payload_len bytes. On return *status, *flags and
 * *out_len describe the response; the response payload (out_len bytes,
 * at most AMW_MAX_PAYLOAD) is written to out, which must hold
 * max(req->length, AMW_STAT_COUNT * 8) bytes when status is AMW_OK.
 * Counts the request in mr->stats. Returns 0.
 */
int memrange_execute(struct memrange *mr, const struct amw_req *req, const uint8_t *payload,
                     uint8_t *out, uint32_t *status, uint16_t *flags, uint32_t *out_len);

/* Count a request refused before execution (by the decoder). */
void memrange_count_refused(struct memrange *mr, const struct amw_req *req);

#endif
