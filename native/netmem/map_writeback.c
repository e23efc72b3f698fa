/*
 * map_writeback.c - writing dirty pages back to their owners: only the
 * aligned 8-byte words that differ from the page's twin, so words this
 * process did not change are never overwritten; and the flusher thread that
 * does it periodically (and renews lock leases). See map_internal.h.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "map_internal.h"

struct iovs {
  struct netmem_iov *v;
  size_t n, cap;
};

static int iovs_add(struct iovs *s, uint64_t addr, uint8_t *buf, size_t len) {
  if (s->n) {
    struct netmem_iov *last = &s->v[s->n - 1];
    if (last->addr + last->len == addr && (uint8_t *)last->buf + last->len == buf) {
      last->len += len;
      return 0;
    }
  }
  if (s->n == s->cap) {
    size_t cap = s->cap ? s->cap * 2 : 64;
    struct netmem_iov *v = realloc(s->v, cap * sizeof *v);
    if (!v) return -ENOMEM;
    s->v = v;
    s->cap = cap;
  }
  s->v[s->n++] = (struct netmem_iov){addr, buf, len};
  return 0;
}

/* Changed aligned 8-byte words of page against twin, as runs. */
static int diff_page(struct iovs *s, uint64_t global, uint8_t *page, const uint8_t *twin) {
  const uint64_t *a = (const uint64_t *)page, *b = (const uint64_t *)twin;
  size_t w = 0, words = PS / 8;
  while (w < words) {
    while (w < words && a[w] == b[w]) w++;
    if (w == words) break;
    size_t s0 = w;
    while (w < words && a[w] != b[w]) w++;
    int rc = iovs_add(s, global + s0 * 8, page + s0 * 8, (w - s0) * 8);
    if (rc) return rc;
  }
  return 0;
}

/* Write back the dirty pages of m in [p0, p1). Under nmm_g.mu. */
int nmm_writeback(struct nm_map *m, size_t p0, size_t p1) {
  if (!m->ndirty) return 0;
  /* Protect first: a write from now on faults (and waits for nmm_g.mu), so the
   * page cannot change between the diff and the twin being dropped. */
  for (size_t p = p0; p < p1;) {
    if (m->state[p] != PG_DIRTY) {
      p++;
      continue;
    }
    size_t q = p;
    while (q < p1 && m->state[q] == PG_DIRTY) q++;
    int rc = nmm_uffd_wp(m->base + p * PS, (q - p) * PS, 1);
    if (rc) {
      nmm_log("netmem: cannot write-protect %p: %s", m->base + p * PS, strerror(-rc));
      return rc;
    }
    p = q;
  }
  struct iovs s = {0};
  int rc = 0;
  size_t pages = 0;
  for (size_t p = p0; p < p1 && !rc; p++)
    if (m->state[p] == PG_DIRTY) {
      rc = diff_page(&s, nmm_gaddr(m, p), m->base + p * PS, m->twin[p]);
      pages++;
    }
  if (!rc && s.n) rc = netmem_writev(nmm_g.nm_io, s.v, s.n);
  if (!rc) {
    for (size_t i = 0; i < s.n; i++) nmm_g.st.bytes_written_back += s.v[i].len;
    nmm_g.st.pages_written_back += pages;
    for (size_t p = p0; p < p1; p++)
      if (m->state[p] == PG_DIRTY) {
        free(m->twin[p]);
        m->twin[p] = NULL;
        m->state[p] = PG_CLEAN;
        m->ndirty--;
      }
  } else {
    nmm_g.st.errors++;
    char owner[300] = "?";
    if (s.n) netmem_owner_name(nmm_g.nm_io, s.v[0].addr, owner, sizeof owner);
    nmm_log("netmem: write-back of %zu dirty pages at 0x%" PRIx64 " failed (%s): %s; they stay "
          "dirty",
          pages, nmm_gaddr(m, p0), owner, nmm_errstr(rc));
  }
  free(s.v);
  return rc;
}

/* Background thread: writes back dirty pages every flush interval (when on)
 * and renews held lock leases once a third of their ttl has passed. */
void *nmm_flusher_main(void *arg) {
  (void)arg;
  uint64_t renew_ms = (uint64_t)nmm_g.cfg.lock_ttl_s * 1000u / 6u; /* look twice per third */
  if (renew_ms < 100) renew_ms = 100;
  uint64_t wait_ms = renew_ms, next_flush = nmm_now_ms() + (uint64_t)nmm_g.cfg.flush_interval_ms;
  if (nmm_g.cfg.flush_interval_ms > 0 && (uint64_t)nmm_g.cfg.flush_interval_ms < wait_ms)
    wait_ms = (uint64_t)nmm_g.cfg.flush_interval_ms;
  pthread_mutex_lock(&nmm_g.mu);
  while (!nmm_g.stopping) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t ns = (uint64_t)ts.tv_nsec + wait_ms * 1000000u;
    ts.tv_sec += (time_t)(ns / 1000000000u);
    ts.tv_nsec = (long)(ns % 1000000000u);
    pthread_cond_timedwait(&nmm_g.flush_cv, &nmm_g.mu, &ts);
    if (nmm_g.stopping) break;
    if (nmm_g.cfg.flush_interval_ms > 0 && nmm_now_ms() >= next_flush) {
      for (struct nm_map *m = nmm_g.maps; m; m = m->next)
        if (m->ndirty) nmm_writeback(m, 0, m->npages);
      next_flush = nmm_now_ms() + (uint64_t)nmm_g.cfg.flush_interval_ms;
    }
    nmm_renew_locks();
  }
  pthread_mutex_unlock(&nmm_g.mu);
  return NULL;
}
