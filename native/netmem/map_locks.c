/*
 * map_locks.c - lease locks on a network word (netmem_lock*, netmem_unlock):
 * acquiring drops the cached pages of the guarded region so they are fetched
 * again, unlocking writes them back first; the flusher renews held leases.
 * See netmem.h and map_internal.h.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <time.h>

#include "map_internal.h"

/* Drop the installed pages of [p0, p1) (written back first) so the next access
 * fetches them again. Under nmm_g.mu. */
static int drop(struct nm_map *m, size_t p0, size_t p1) {
  int rc = nmm_writeback(m, p0, p1);
  if (rc) return rc;
  for (size_t p = p0; p < p1;) {
    if (m->state[p] != PG_CLEAN) {
      p++;
      continue;
    }
    size_t q = p;
    while (q < p1 && m->state[q] == PG_CLEAN) q++;
    if (madvise(m->base + p * PS, (q - p) * PS, MADV_DONTNEED)) return -errno;
    memset(m->state + p, PG_MISSING, q - p);
    p = q;
  }
  m->seq_next = p0;
  return 0;
}

static uint64_t lock_word(uint32_t owner, uint32_t expiry) {
  return (uint64_t)owner << 32 | expiry;
}

/* Extend every held lease that is a third through its ttl. Under nmm_g.mu. */
void nmm_renew_locks(void) {
  uint64_t t = nmm_now_ms();
  for (struct nm_lock *l = nmm_g.locks; l; l = l->next) {
    uint64_t expiry_ms = (uint64_t)(uint32_t)l->value * 1000u;
    if (l->lost || expiry_ms > t + (uint64_t)nmm_g.cfg.lock_ttl_s * 1000u * 2u / 3u) continue;
    uint64_t next = lock_word((uint32_t)(l->value >> 32),
                              (uint32_t)((t + 999) / 1000 + nmm_g.cfg.lock_ttl_s));
    uint64_t old;
    int rc = netmem_cas64(nmm_g.nm_io, l->word_global, l->value, next, &old);
    if (rc) continue; /* try again next time; the lease is not lost yet */
    if (old == l->value) {
      l->value = next;
    } else {
      l->lost = 1;
      nmm_log("netmem: the lease on 0x%" PRIx64 " was lost (word %#" PRIx64 "): another holder "
            "may be in the critical section",
            l->word_global, old);
    }
  }
}

int netmem_lock_range(void *addr, void *start, size_t len) {
  if (!nmm_g.inited || ((uintptr_t)addr & 7u)) return -EINVAL;
  pthread_mutex_lock(&nmm_g.mu);
  struct nm_map *m = nmm_map_of((uintptr_t)addr), *rm;
  size_t p0, p1;
  int rc = m ? nmm_region(start, len, &rm, &p0, &p1) : -EINVAL;
  if (!rc && rm != m) rc = -EINVAL; /* the guarded region is in the word's mapping */
  uint64_t word = m ? nmm_gaddr_of(m, addr) : 0;
  pthread_mutex_unlock(&nmm_g.mu);
  if (rc) return rc;
  uint32_t owner = 0;
  while (!owner)
    if (getrandom(&owner, sizeof owner, 0) != sizeof owner) owner = (uint32_t)rand();
  uint64_t deadline = nmm_now_ms() + (uint64_t)nmm_g.cfg.lock_timeout_ms;
  uint64_t expected = 0, mine, delay_us = 20;
  for (;;) {
    uint64_t t = nmm_now_ms();
    mine = lock_word(owner, (uint32_t)((t + 999) / 1000 + nmm_g.cfg.lock_ttl_s));
    uint64_t old;
    pthread_mutex_lock(&nmm_g.mu);
    rc = netmem_cas64(nmm_g.nm_io, word, expected, mine, &old);
    pthread_mutex_unlock(&nmm_g.mu);
    if (rc) return rc;
    if (old == expected) break;
    uint32_t expiry = (uint32_t)old;
    if (old == 0 || (uint64_t)expiry * 1000 <= t) {
      expected = old; /* free, or a lease nobody renewed: take it at once */
      continue;
    }
    expected = 0;
    if (t >= deadline) return -ETIMEDOUT;
    uint32_t jitter;
    if (getrandom(&jitter, sizeof jitter, 0) != sizeof jitter) jitter = 0;
    uint64_t sleep_us = delay_us / 2 + jitter % (delay_us + 1);
    struct timespec ts = {.tv_sec = (time_t)(sleep_us / 1000000),
                          .tv_nsec = (long)(sleep_us % 1000000) * 1000};
    nanosleep(&ts, NULL);
    if (delay_us < 10000) delay_us *= 2;
  }
  struct nm_lock *l = calloc(1, sizeof *l);
  pthread_mutex_lock(&nmm_g.mu);
  m = nmm_map_of((uintptr_t)addr);
  rc = !l ? -ENOMEM : !m ? -EINVAL : drop(m, p0, p1);
  if (!rc) {
    *l = (struct nm_lock){.word_global = word, .value = mine, .map = m, .p0 = p0, .p1 = p1,
                          .next = nmm_g.locks};
    nmm_g.locks = l;
  }
  if (rc) {
    free(l);
    uint64_t old;
    netmem_cas64(nmm_g.nm_io, word, mine, 0, &old); /* give it back */
  }
  pthread_mutex_unlock(&nmm_g.mu);
  return rc;
}

int netmem_lock(void *addr) { return netmem_lock_range(addr, addr, 0); }

int netmem_unlock(void *addr) {
  if (!nmm_g.inited) return -EINVAL;
  pthread_mutex_lock(&nmm_g.mu);
  struct nm_map *m = nmm_map_of((uintptr_t)addr);
  uint64_t word = m ? nmm_gaddr_of(m, addr) : 0;
  struct nm_lock **lp = &nmm_g.locks;
  while (*lp && !((*lp)->word_global == word && (*lp)->map == m)) lp = &(*lp)->next;
  struct nm_lock *l = *lp;
  int rc = l ? nmm_writeback(m, l->p0, l->p1) : -ENOLCK;
  if (!rc) { /* released only once everything written under it is back */
    uint64_t old;
    rc = netmem_cas64(nmm_g.nm_io, word, l->value, 0, &old);
    if (!rc && old != l->value) {
      nmm_log("netmem: unlock of 0x%" PRIx64 ": the lease was lost (word %#" PRIx64 ")", word, old);
      rc = -ENOLCK;
    }
    *lp = l->next;
    free(l);
  }
  pthread_mutex_unlock(&nmm_g.mu);
  return rc;
}
