/*
 * map_install.c - fetching pages from their owners and installing them in a
 * mapping: UFFDIO_COPY (write-protected, so the first write faults), waking
 * the waiting threads, and the SIGBUS page that replaces one that cannot be
 * fetched. See map_internal.h.
 */
#include <errno.h>
#include <inttypes.h>
#include <linux/userfaultfd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "map_internal.h"

int nmm_uffd_wake(void *addr, size_t len) {
  struct uffdio_range r = {.start = (uintptr_t)addr, .len = len};
  return ioctl(nmm_g.uffd, UFFDIO_WAKE, &r) ? -errno : 0;
}

int nmm_uffd_wp(void *addr, size_t len, int protect) {
  struct uffdio_writeprotect wp = {.range = {.start = (uintptr_t)addr, .len = len},
                                   .mode = protect ? UFFDIO_WRITEPROTECT_MODE_WP : 0};
  return ioctl(nmm_g.uffd, UFFDIO_WRITEPROTECT, &wp) ? -errno : 0;
}

/* Install [p, p+n) of m from src, write-protected. Pages found present
 * (-EEXIST) are skipped. */
static int uffd_install(struct nm_map *m, size_t p, size_t n, const uint8_t *src) {
  size_t done = 0;
  while (done < n * PS) {
    struct uffdio_copy c = {.dst = (uintptr_t)(m->base + p * PS + done),
                            .src = (uintptr_t)(src + done),
                            .len = n * PS - done,
                            .mode = UFFDIO_COPY_MODE_WP};
    if (ioctl(nmm_g.uffd, UFFDIO_COPY, &c) == 0) break;
    int e = errno;
    if (c.copy > 0) {
      done += (size_t)c.copy;
      continue;
    }
    if (e == EAGAIN) continue;
    if (e == EEXIST || c.copy == -EEXIST) {
      done += PS; /* already there: keep what is mapped */
      continue;
    }
    return -e;
  }
  return 0;
}

/* The access at page p failed for good: the page raises SIGBUS from now on. */
void nmm_make_gone(struct nm_map *m, size_t p) {
  void *at = m->base + p * PS;
  if (mmap(at, PS, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, nmm_g.gone_fd, 0) == MAP_FAILED)
    nmm_log("netmem: cannot replace the failed page %p: %s", at, strerror(errno));
  if (m->state[p] == PG_DIRTY) {
    free(m->twin[p]);
    m->twin[p] = NULL;
    m->ndirty--;
  }
  m->state[p] = PG_GONE;
  nmm_uffd_wake(at, PS);
}

/* Read-ahead: each piece of a window is installed as soon as it arrives
 * (waking whoever waits on it) while the next pieces are still on the wire,
 * and by a second thread (the installer), so that copying pages in
 * (UFFDIO_COPY, about half the cost of a window) overlaps receiving the next
 * piece. The handler, holding nmm_g.mu, waits for the installer to drain before it
 * returns; meanwhile the installer is the only writer of the window's page
 * states. A single-page fetch is installed inline (no hand-off latency). */
#define FETCH_CHUNK (256u << 10)
#define QCAP 64

/* The fetch in progress (handler thread): window pages start at page p0,
 * global g0 (one extent). */
struct fetch_ctx {
  struct nm_map *m;
  size_t p0;
  uint64_t g0;
};

struct piece {
  struct nm_map *m;
  size_t p, n;
  const uint8_t *src;
};

static struct {
  pthread_mutex_t mu;
  pthread_cond_t cv, idle;
  struct piece item[QCAP];
  size_t head, tail; /* items [head, tail) queued */
  int busy, stop, err;
  uint64_t pages;
  pthread_t thread;
  int started;
} Q = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER,
       .idle = PTHREAD_COND_INITIALIZER};

static void *installer_main(void *arg) {
  (void)arg;
  pthread_mutex_lock(&Q.mu);
  for (;;) {
    while (Q.head == Q.tail && !Q.stop) pthread_cond_wait(&Q.cv, &Q.mu);
    if (Q.head == Q.tail && Q.stop) break;
    struct piece it = Q.item[Q.head % QCAP];
    Q.busy = 1;
    pthread_mutex_unlock(&Q.mu);
    int rc = uffd_install(it.m, it.p, it.n, it.src);
    if (!rc) memset(it.m->state + it.p, PG_CLEAN, it.n);
    pthread_mutex_lock(&Q.mu);
    Q.head++;
    Q.busy = 0;
    if (rc && !Q.err) Q.err = rc;
    if (!rc) Q.pages += it.n;
    pthread_cond_broadcast(&Q.idle);
  }
  pthread_mutex_unlock(&Q.mu);
  return NULL;
}

static int queue_piece(void *ctx, uint64_t addr, void *buf, size_t len) {
  struct fetch_ctx *f = ctx;
  struct nm_map *m = f->m;
  pthread_mutex_lock(&Q.mu);
  while (Q.tail - Q.head == QCAP) pthread_cond_wait(&Q.idle, &Q.mu);
  Q.item[Q.tail % QCAP].m = m;
  Q.item[Q.tail % QCAP].p = f->p0 + (size_t)(addr - f->g0) / PS;
  Q.item[Q.tail % QCAP].n = len / PS;
  Q.item[Q.tail % QCAP].src = buf;
  Q.tail++;
  int err = Q.err;
  pthread_cond_signal(&Q.cv);
  pthread_mutex_unlock(&Q.mu);
  return err;
}

static int install_piece(void *ctx, uint64_t addr, void *buf, size_t len) {
  struct fetch_ctx *f = ctx;
  struct nm_map *m = f->m;
  size_t p = f->p0 + (size_t)(addr - f->g0) / PS, n = len / PS;
  int rc = uffd_install(m, p, n, buf);
  if (rc) return rc;
  memset(m->state + p, PG_CLEAN, n);
  nmm_g.st.pages_fetched += n;
  return 0;
}

/* Fetch [p, p+n) (within one extent) through nmm_g.bounce and install it. */
int nmm_fetch(struct nm_map *m, size_t p, size_t n) {
  nmm_g.st.fetches++;
  static struct fetch_ctx f; /* handler thread only */
  f = (struct fetch_ctx){m, p, nmm_gaddr(m, p)};
  if (n == 1 || !Q.started)
    return netmem_read_stream(nmm_g.nm_fault, f.g0, nmm_g.bounce, n * PS, FETCH_CHUNK, install_piece, &f);
  int rc = netmem_read_stream(nmm_g.nm_fault, f.g0, nmm_g.bounce, n * PS, FETCH_CHUNK, queue_piece, &f);
  pthread_mutex_lock(&Q.mu); /* the bounce buffer is reused: wait for every copy */
  while (Q.head != Q.tail || Q.busy) pthread_cond_wait(&Q.idle, &Q.mu);
  if (!rc) rc = Q.err;
  Q.err = 0;
  nmm_g.st.pages_fetched += Q.pages;
  Q.pages = 0;
  pthread_mutex_unlock(&Q.mu);
  return rc;
}

void nmm_installer_start(void) {
  if (pthread_create(&Q.thread, NULL, installer_main, NULL) == 0) Q.started = 1;
}

void nmm_installer_stop(void) {
  if (!Q.started) return;
  pthread_mutex_lock(&Q.mu);
  Q.stop = 1;
  pthread_cond_broadcast(&Q.cv);
  pthread_mutex_unlock(&Q.mu);
  pthread_join(Q.thread, NULL);
  Q.started = Q.stop = 0;
  Q.head = Q.tail = 0;
}
