/*
 * netmem_map.c - network memory mapped into the process with userfaultfd; see
 * the "Mapping" part of netmem.h. This file holds the process-wide state, its
 * start and stop, and the mapping API (map, sync, unmap); the rest is split by
 * concern (map_internal.h says what they share):
 *   map_faults.c     the fault-handler thread and the userfaultfd loop
 *   map_install.c    fetching and installing pages (UFFDIO_COPY, write-protect)
 *   map_writeback.c  twin copies, word diffs, the flusher thread
 *   map_settings.c   defaults and the NETMEM_* environment
 *   map_locks.c      lease locks on network words
 *
 * Failed fetch -> SIGBUS: the page is replaced (mmap MAP_FIXED, atomic) by a
 * shared mapping of an empty memfd, where any access is beyond the end of the
 * file, then the waiting threads are woken: their retried access raises SIGBUS
 * with si_addr set, the way a truncated file mapping does.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/userfaultfd.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "map_internal.h"

static pthread_mutex_t init_mu = PTHREAD_MUTEX_INITIALIZER;

struct nmm_state nmm_g = {.mu = PTHREAD_MUTEX_INITIALIZER,
                          .flush_cv = PTHREAD_COND_INITIALIZER,
                          .uffd = -1,
                          .gone_fd = -1,
                          .stop_pipe = {-1, -1}};

void nmm_log(const char *fmt, ...) {
  char line[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line - 1, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n > sizeof line - 2) n = sizeof line - 2;
  line[n++] = '\n';
  ssize_t w = write(2, line, (size_t)n); /* one write: lines of threads do not mix */
  (void)w;
}

const char *nmm_errstr(int neg) {
  switch (-neg) {
  case ECONNRESET: return "ECONNRESET (connection to the owner dropped)";
  case ECONNREFUSED: return "ECONNREFUSED (owner not reachable)";
  case ETIMEDOUT: return "ETIMEDOUT (owner did not answer within the timeout)";
  case EFAULT: return "EFAULT (the owner does not serve this address)";
  case EACCES: return "EACCES (the owner's TLS certificate was refused)";
  default: return strerror(-neg);
  }
}

uint64_t nmm_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}


struct nm_map *nmm_map_of(uintptr_t a) {
  for (struct nm_map *m = nmm_g.maps; m; m = m->next)
    if (a >= (uintptr_t)m->base && a - (uintptr_t)m->base < m->npages * PS) return m;
  return NULL;
}

/* The extent holding page p. */
const struct nm_ext *nmm_ext_of(const struct nm_map *m, size_t p) {
  size_t lo = 0, hi = m->n_ext;
  while (hi - lo > 1) {
    size_t mid = lo + (hi - lo) / 2;
    if (m->ext[mid].p0 <= p) lo = mid;
    else hi = mid;
  }
  return &m->ext[lo];
}

/* The global address of page p / of a byte of the mapping. */
uint64_t nmm_gaddr(const struct nm_map *m, size_t p) {
  const struct nm_ext *e = nmm_ext_of(m, p);
  return e->global + (uint64_t)(p - e->p0) * PS;
}

uint64_t nmm_gaddr_of(const struct nm_map *m, const void *addr) {
  size_t off = (size_t)((uintptr_t)addr - (uintptr_t)m->base);
  return nmm_gaddr(m, off / PS) + off % PS;
}

static void teardown_locked(void);

int netmem_map_init(const struct netmem_route *routes, size_t n,
                    const struct netmem_map_config *cfg) {
  pthread_mutex_lock(&init_mu);
  if (nmm_g.inited) {
    pthread_mutex_unlock(&init_mu);
    return -EALREADY;
  }
  nmm_settings_resolve(cfg, &nmm_g.cfg, &nmm_g.ra_pages);
  const struct netmem_map_config c = nmm_g.cfg;
  int rc = netmem_open(routes, n, &nmm_g.nm_fault);
  if (!rc) rc = netmem_open(routes, n, &nmm_g.nm_io);
  if (!rc) rc = netmem_set_timeout_ms(nmm_g.nm_fault, c.timeout_ms);
  if (!rc) rc = netmem_set_timeout_ms(nmm_g.nm_io, c.timeout_ms);
  if (!rc && (c.tls_cert || c.tls_key || c.tls_ca)) {
    rc = netmem_set_tls(nmm_g.nm_fault, c.tls_cert, c.tls_key, c.tls_ca);
    if (!rc) rc = netmem_set_tls(nmm_g.nm_io, c.tls_cert, c.tls_key, c.tls_ca);
    if (rc) nmm_log("netmem: TLS: %s", rc == -EINVAL ? netmem_tls_error() : strerror(-rc));
  }
  if (!rc) {
    nmm_g.bounce = mmap(NULL, nmm_g.ra_pages * PS, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                    -1, 0);
    if (nmm_g.bounce == MAP_FAILED) {
      nmm_g.bounce = NULL;
      rc = -ENOMEM;
    }
  }
  if (!rc) {
    nmm_g.uffd = nmm_open_uffd();
    if (nmm_g.uffd < 0) rc = nmm_g.uffd;
  }
  if (!rc) {
    nmm_g.gone_fd = memfd_create("netmem-gone", MFD_CLOEXEC);
    if (nmm_g.gone_fd < 0) rc = -errno;
  }
  if (!rc && pipe2(nmm_g.stop_pipe, O_CLOEXEC)) rc = -errno;
  if (!rc) {
    /* Our threads take no signals: the program's handlers run on its threads. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    if (nmm_g.ra_pages > 1) nmm_installer_start();
    rc = -pthread_create(&nmm_g.handler, NULL, nmm_handler_main, NULL);
    if (!rc) nmm_g.inited = 1; /* from here teardown_locked joins the handler */
    if (!rc) {
      rc = -pthread_create(&nmm_g.flusher, NULL, nmm_flusher_main, NULL);
      if (!rc) nmm_g.have_flusher = 1;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
  }
  if (rc) teardown_locked();
  pthread_mutex_unlock(&init_mu);
  return rc;
}

static void free_map(struct nm_map *m) {
  for (size_t p = 0; p < m->npages && m->twin; p++) free(m->twin[p]);
  free(m->ext);
  free(m->twin);
  free(m->state);
  free(m);
}

/* Stops the threads and frees everything; init_mu held. */
static void teardown_locked(void) {
  if (nmm_g.inited) {
    pthread_mutex_lock(&nmm_g.mu);
    nmm_g.stopping = 1;
    pthread_cond_broadcast(&nmm_g.flush_cv);
    pthread_mutex_unlock(&nmm_g.mu);
    ssize_t w = write(nmm_g.stop_pipe[1], "x", 1);
    (void)w;
    pthread_join(nmm_g.handler, NULL);
    if (nmm_g.have_flusher) pthread_join(nmm_g.flusher, NULL);
  }
  nmm_installer_stop();
  while (nmm_g.maps) {
    struct nm_map *m = nmm_g.maps;
    nmm_g.maps = m->next;
    munmap(m->base, m->npages * PS);
    free_map(m);
  }
  while (nmm_g.locks) {
    struct nm_lock *l = nmm_g.locks;
    nmm_g.locks = l->next;
    free(l);
  }
  netmem_close(nmm_g.nm_fault);
  netmem_close(nmm_g.nm_io);
  nmm_g.nm_fault = nmm_g.nm_io = NULL;
  if (nmm_g.bounce) munmap(nmm_g.bounce, nmm_g.ra_pages * PS);
  nmm_g.bounce = NULL;
  if (nmm_g.uffd >= 0) close(nmm_g.uffd);
  if (nmm_g.gone_fd >= 0) close(nmm_g.gone_fd);
  for (int i = 0; i < 2; i++)
    if (nmm_g.stop_pipe[i] >= 0) close(nmm_g.stop_pipe[i]);
  nmm_g.uffd = nmm_g.gone_fd = nmm_g.stop_pipe[0] = nmm_g.stop_pipe[1] = -1;
  nmm_g.have_flusher = nmm_g.stopping = 0;
  nmm_g.inited = 0;
}

void netmem_map_shutdown(void) {
  pthread_mutex_lock(&init_mu);
  if (nmm_g.inited) {
    pthread_mutex_lock(&nmm_g.mu);
    for (struct nm_map *m = nmm_g.maps; m; m = m->next) nmm_writeback(m, 0, m->npages);
    pthread_mutex_unlock(&nmm_g.mu);
  }
  teardown_locked();
  pthread_mutex_unlock(&init_mu);
}

/* ---- the API ------------------------------------------------------------ */

void *netmem_map(uint64_t global_addr, size_t len, int flags) {
  struct netmem_extent one = {global_addr, len};
  return netmem_map_extents(&one, 1, flags);
}

void *netmem_map_extents(const struct netmem_extent *ext, size_t n, int flags) {
  int rc = netmem_map_init_env();
  if (rc) {
    errno = -rc;
    return NULL;
  }
  size_t npages = 0;
  for (size_t i = 0; i < n; i++) {
    size_t len = ext[i].len;
    /* every extent but the last covers whole pages */
    if (!len || ext[i].global % PS || len > SIZE_MAX - PS || (i + 1 < n && len % PS) ||
        npages > SIZE_MAX / PS - (len + PS - 1) / PS) {
      errno = EINVAL;
      return NULL;
    }
    npages += (len + PS - 1) / PS;
  }
  if (!n || ((flags & NETMEM_MAP_FIXED) && n != 1)) {
    errno = EINVAL;
    return NULL;
  }
  uint64_t global_addr = ext[0].global;
  pthread_mutex_lock(&nmm_g.mu);
  for (size_t i = 0; i < n && !rc; i++) {
    rc = netmem_owned(nmm_g.nm_io, ext[i].global, (ext[i].len + PS - 1) / PS * PS);
    if (rc)
      nmm_log("netmem: cannot map 0x%" PRIx64 "+%zu: no node owns all of it", ext[i].global,
            ext[i].len);
  }
  if (rc) {
    pthread_mutex_unlock(&nmm_g.mu);
    errno = -rc;
    return NULL;
  }
  struct nm_map *m = calloc(1, sizeof *m);
  if (m) {
    m->state = calloc(npages, 1);
    m->twin = calloc(npages, sizeof *m->twin);
    m->ext = calloc(n, sizeof *m->ext);
  }
  if (!m || !m->state || !m->twin || !m->ext) {
    if (m) free_map(m);
    pthread_mutex_unlock(&nmm_g.mu);
    errno = ENOMEM;
    return NULL;
  }
  m->npages = npages;
  m->n_ext = n;
  for (size_t i = 0, p = 0; i < n; i++) {
    m->ext[i] = (struct nm_ext){p, (ext[i].len + PS - 1) / PS, ext[i].global};
    p += m->ext[i].n;
  }
  m->readahead = !(flags & NETMEM_MAP_NOREADAHEAD) && nmm_g.ra_pages > 1;
  int mflags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;
  void *hint = NULL;
  if (flags & NETMEM_MAP_FIXED) {
    hint = (void *)(uintptr_t)global_addr;
    mflags |= MAP_FIXED_NOREPLACE;
  }
  void *base = mmap(hint, npages * PS, PROT_READ | PROT_WRITE, mflags, -1, 0);
  if (base == MAP_FAILED || (hint && base != hint)) {
    int e = base == MAP_FAILED ? errno : EEXIST;
    if (base != MAP_FAILED) munmap(base, npages * PS);
    free_map(m);
    pthread_mutex_unlock(&nmm_g.mu);
    errno = e;
    return NULL;
  }
  m->base = base;
  madvise(base, npages * PS, MADV_NOHUGEPAGE); /* faults and copies are per 4 KiB page */
  /* A fork()ed child would get the region without its userfaultfd (zeros where
   * no page was installed): give it no region at all, so a use is a SIGSEGV. */
  madvise(base, npages * PS, MADV_DONTFORK);
  struct uffdio_register reg = {.range = {.start = (uintptr_t)base, .len = npages * PS},
                                .mode = UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP};
  if (ioctl(nmm_g.uffd, UFFDIO_REGISTER, &reg)) {
    int e = errno;
    nmm_log("netmem: userfaultfd register: %s", strerror(e));
    munmap(base, npages * PS);
    free_map(m);
    pthread_mutex_unlock(&nmm_g.mu);
    errno = e;
    return NULL;
  }
  m->next = nmm_g.maps;
  nmm_g.maps = m;
  pthread_mutex_unlock(&nmm_g.mu);
  return base;
}

int nmm_region(void *addr, size_t len, struct nm_map **mp, size_t *p0, size_t *p1) {
  struct nm_map *m = nmm_map_of((uintptr_t)addr);
  if (!m) return -EINVAL;
  size_t off = (size_t)((uintptr_t)addr - (uintptr_t)m->base);
  size_t end = len ? off + len : m->npages * PS;
  if (end > m->npages * PS || end < off) end = m->npages * PS;
  *mp = m;
  *p0 = len ? off / PS : 0;
  *p1 = (end + PS - 1) / PS;
  return 0;
}

int netmem_sync(void *addr, size_t len) {
  if (!nmm_g.inited) return -EINVAL;
  pthread_mutex_lock(&nmm_g.mu);
  struct nm_map *m;
  size_t p0, p1;
  int rc = nmm_region(addr, len, &m, &p0, &p1);
  if (!rc) rc = nmm_writeback(m, p0, p1);
  pthread_mutex_unlock(&nmm_g.mu);
  return rc;
}

int netmem_unmap(void *addr) {
  if (!nmm_g.inited) return -EINVAL;
  pthread_mutex_lock(&nmm_g.mu);
  struct nm_map **pp = &nmm_g.maps;
  while (*pp && (*pp)->base != addr) pp = &(*pp)->next;
  struct nm_map *m = *pp;
  if (!m) {
    pthread_mutex_unlock(&nmm_g.mu);
    return -EINVAL;
  }
  int rc = nmm_writeback(m, 0, m->npages);
  *pp = m->next;
  for (struct nm_lock **lp = &nmm_g.locks; *lp;) {
    if ((*lp)->map == m) {
      struct nm_lock *l = *lp;
      *lp = l->next;
      free(l);
    } else {
      lp = &(*lp)->next;
    }
  }
  struct uffdio_range r = {.start = (uintptr_t)m->base, .len = m->npages * PS};
  ioctl(nmm_g.uffd, UFFDIO_UNREGISTER, &r);
  munmap(m->base, m->npages * PS);
  free_map(m);
  pthread_mutex_unlock(&nmm_g.mu);
  return rc;
}

uint64_t netmem_global_addr(const void *addr) {
  if (!nmm_g.inited) return 0;
  pthread_mutex_lock(&nmm_g.mu);
  struct nm_map *m = nmm_map_of((uintptr_t)addr);
  uint64_t g = m ? nmm_gaddr_of(m, addr) : 0;
  pthread_mutex_unlock(&nmm_g.mu);
  return g;
}

void netmem_map_get_stats(struct netmem_map_stats *out) {
  pthread_mutex_lock(&nmm_g.mu);
  *out = nmm_g.st;
  pthread_mutex_unlock(&nmm_g.mu);
}
