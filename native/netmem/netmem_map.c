/*
 * netmem_map.c - network memory mapped into the process with userfaultfd; see
 * the "Mapping" part of netmem.h.
 *
 * One process-wide state G guarded by G.mu:
 *   - a userfaultfd (missing + write-protect faults) read by one handler
 *     thread; it resolves faults under G.mu with its own struct netmem
 *     (nm_fault), so a fetch never races a lock's drop of the same pages;
 *   - every mapping's page states (missing, clean = installed write-protected,
 *     dirty = writable with a twin copy, gone = replaced by a SIGBUS mapping);
 *   - a second struct netmem (nm_io) for write-back and lock words, used under
 *     G.mu by netmem_sync/unmap/lock/unlock and the flusher thread.
 * Code holding G.mu only touches installed pages of a mapping (twins, diffs),
 * so it never faults on a registered page itself.
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
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "netmem.h"

#define PS 4096u
#define DEFAULT_READAHEAD (8u << 20)
#define DEFAULT_FLUSH_MS 1000
#define DEFAULT_LOCK_TTL_S 30
#define DEFAULT_LOCK_TIMEOUT_MS 30000

enum { PG_MISSING = 0, PG_CLEAN, PG_DIRTY, PG_GONE };

/* Pages [p0, p0 + n) of a mapping show global [global, global + n pages). */
struct nm_ext {
  size_t p0, n;
  uint64_t global;
};

struct nm_map {
  uint8_t *base;
  size_t npages;
  struct nm_ext *ext; /* in page order, covering [0, npages) */
  size_t n_ext;
  uint8_t *state;  /* PG_* per page */
  uint8_t **twin;  /* dirty pages: their content when first written */
  size_t ndirty;
  size_t seq_next; /* a fault here continues a sequential scan */
  int readahead;
  struct nm_map *next;
};

struct nm_lock {
  uint64_t word_global;
  uint64_t value; /* what we stored: owner << 32 | expiry (renewed by the flusher) */
  int lost;       /* a renewal found another owner */
  struct nm_map *map;
  size_t p0, p1; /* guarded pages */
  struct nm_lock *next;
};

static pthread_mutex_t init_mu = PTHREAD_MUTEX_INITIALIZER;

static struct {
  int inited;
  pthread_mutex_t mu;
  pthread_cond_t flush_cv;
  struct netmem_map_config cfg;
  size_t ra_pages;
  struct netmem *nm_fault, *nm_io;
  int uffd, gone_fd, stop_pipe[2];
  pthread_t handler, flusher;
  int have_flusher, stopping;
  struct nm_map *maps;
  struct nm_lock *locks;
  uint8_t *bounce; /* ra_pages pages, handler thread only */
  struct netmem_map_stats st;
} G = {.mu = PTHREAD_MUTEX_INITIALIZER, .flush_cv = PTHREAD_COND_INITIALIZER, .uffd = -1,
       .gone_fd = -1, .stop_pipe = {-1, -1}};

static void logf_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logf_(const char *fmt, ...) {
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

static const char *errstr(int neg) {
  switch (-neg) {
  case ECONNRESET: return "ECONNRESET (connection to the owner dropped)";
  case ECONNREFUSED: return "ECONNREFUSED (owner not reachable)";
  case ETIMEDOUT: return "ETIMEDOUT (owner did not answer within the timeout)";
  case EFAULT: return "EFAULT (the owner does not serve this address)";
  case EACCES: return "EACCES (the owner's TLS certificate was refused)";
  default: return strerror(-neg);
  }
}

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- userfaultfd ioctls ------------------------------------------------- */

static int uffd_wake(void *addr, size_t len) {
  struct uffdio_range r = {.start = (uintptr_t)addr, .len = len};
  return ioctl(G.uffd, UFFDIO_WAKE, &r) ? -errno : 0;
}

static int uffd_wp(void *addr, size_t len, int protect) {
  struct uffdio_writeprotect wp = {.range = {.start = (uintptr_t)addr, .len = len},
                                   .mode = protect ? UFFDIO_WRITEPROTECT_MODE_WP : 0};
  return ioctl(G.uffd, UFFDIO_WRITEPROTECT, &wp) ? -errno : 0;
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
    if (ioctl(G.uffd, UFFDIO_COPY, &c) == 0) break;
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

/* ---- mappings ----------------------------------------------------------- */

static struct nm_map *map_of(uintptr_t a) {
  for (struct nm_map *m = G.maps; m; m = m->next)
    if (a >= (uintptr_t)m->base && a - (uintptr_t)m->base < m->npages * PS) return m;
  return NULL;
}

/* The extent holding page p. */
static const struct nm_ext *ext_of(const struct nm_map *m, size_t p) {
  size_t lo = 0, hi = m->n_ext;
  while (hi - lo > 1) {
    size_t mid = lo + (hi - lo) / 2;
    if (m->ext[mid].p0 <= p) lo = mid;
    else hi = mid;
  }
  return &m->ext[lo];
}

/* The global address of page p / of a byte of the mapping. */
static uint64_t gaddr(const struct nm_map *m, size_t p) {
  const struct nm_ext *e = ext_of(m, p);
  return e->global + (uint64_t)(p - e->p0) * PS;
}

static uint64_t gaddr_of(const struct nm_map *m, const void *addr) {
  size_t off = (size_t)((uintptr_t)addr - (uintptr_t)m->base);
  return gaddr(m, off / PS) + off % PS;
}

/* The access at page p failed for good: the page raises SIGBUS from now on. */
static void make_gone(struct nm_map *m, size_t p) {
  void *at = m->base + p * PS;
  if (mmap(at, PS, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, G.gone_fd, 0) == MAP_FAILED)
    logf_("netmem: cannot replace the failed page %p: %s", at, strerror(errno));
  if (m->state[p] == PG_DIRTY) {
    free(m->twin[p]);
    m->twin[p] = NULL;
    m->ndirty--;
  }
  m->state[p] = PG_GONE;
  uffd_wake(at, PS);
}

/* Read-ahead: each piece of a window is installed as soon as it arrives
 * (waking whoever waits on it) while the next pieces are still on the wire,
 * and by a second thread (the installer), so that copying pages in
 * (UFFDIO_COPY, about half the cost of a window) overlaps receiving the next
 * piece. The handler, holding G.mu, waits for the installer to drain before it
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
  G.st.pages_fetched += n;
  return 0;
}

/* Fetch [p, p+n) (within one extent) through G.bounce and install it. */
static int fetch(struct nm_map *m, size_t p, size_t n) {
  G.st.fetches++;
  static struct fetch_ctx f; /* handler thread only */
  f = (struct fetch_ctx){m, p, gaddr(m, p)};
  if (n == 1 || !Q.started)
    return netmem_read_stream(G.nm_fault, f.g0, G.bounce, n * PS, FETCH_CHUNK, install_piece, &f);
  int rc = netmem_read_stream(G.nm_fault, f.g0, G.bounce, n * PS, FETCH_CHUNK, queue_piece, &f);
  pthread_mutex_lock(&Q.mu); /* the bounce buffer is reused: wait for every copy */
  while (Q.head != Q.tail || Q.busy) pthread_cond_wait(&Q.idle, &Q.mu);
  if (!rc) rc = Q.err;
  Q.err = 0;
  G.st.pages_fetched += Q.pages;
  Q.pages = 0;
  pthread_mutex_unlock(&Q.mu);
  return rc;
}

static void handle_missing(struct nm_map *m, size_t p, uint64_t fault_addr, uint32_t tid) {
  G.st.missing_faults++;
  if (m->state[p] != PG_MISSING) { /* installed meanwhile (or gone): retry the access */
    uffd_wake(m->base + p * PS, PS);
    return;
  }
  size_t want = m->readahead && p == m->seq_next ? G.ra_pages : 1, n = 0;
  const struct nm_ext *e = ext_of(m, p);
  while (n < want && p + n < e->p0 + e->n && m->state[p + n] == PG_MISSING) n++;
  int rc = fetch(m, p, n);
  if (rc && m->state[p] == PG_MISSING && n > 1)
    rc = fetch(m, p, n = 1); /* the window may reach a dead owner */
  if (!rc || m->state[p] != PG_MISSING) { /* the faulting page is in */
    m->seq_next = p + n;
    return;
  }
  char owner[300];
  netmem_owner_name(G.nm_fault, gaddr(m, p), owner, sizeof owner);
  G.st.errors++;
  const char *tls = netmem_tls_error();
  logf_("netmem: page 0x%" PRIx64 " (address %#" PRIx64 ", thread %u) could not be fetched from "
        "%s: %s%s%s; the access gets SIGBUS",
        gaddr(m, p), fault_addr, tid, owner, errstr(rc), G.cfg.tls_ca && *tls ? "; " : "",
        G.cfg.tls_ca && *tls ? tls : "");
  make_gone(m, p);
}

static void handle_wp(struct nm_map *m, size_t p) {
  G.st.wp_faults++;
  uint8_t *page = m->base + p * PS;
  if (m->state[p] == PG_CLEAN) {
    uint8_t *twin = malloc(PS);
    if (!twin) {
      logf_("netmem: out of memory for the twin of page %p; the access gets SIGBUS", page);
      make_gone(m, p);
      return;
    }
    memcpy(twin, page, PS);
    m->twin[p] = twin;
    m->state[p] = PG_DIRTY;
    m->ndirty++;
  } else if (m->state[p] != PG_DIRTY) {
    uffd_wake(page, PS); /* dropped or gone meanwhile: the retry faults again */
    return;
  }
  int rc = uffd_wp(page, PS, 0); /* writable; wakes the writer */
  if (rc) logf_("netmem: cannot unprotect page %p: %s", page, strerror(-rc));
}

static void *handler_main(void *arg) {
  (void)arg;
  struct uffd_msg msgs[64];
  for (;;) {
    struct pollfd p[2] = {{.fd = G.uffd, .events = POLLIN}, {.fd = G.stop_pipe[0], .events = POLLIN}};
    if (poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      logf_("netmem: fault handler: poll: %s", strerror(errno));
      break;
    }
    if (p[1].revents) break;
    ssize_t r = read(G.uffd, msgs, sizeof msgs);
    if (r < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      logf_("netmem: fault handler: read: %s", strerror(errno));
      break;
    }
    size_t cnt = (size_t)r / sizeof msgs[0];
    pthread_mutex_lock(&G.mu);
    for (size_t i = 0; i < cnt; i++) {
      if (msgs[i].event != UFFD_EVENT_PAGEFAULT) continue;
      uint64_t a = msgs[i].arg.pagefault.address;
      struct nm_map *m = map_of((uintptr_t)a);
      if (!m) {
        uffd_wake((void *)(uintptr_t)(a & ~(uint64_t)(PS - 1)), PS);
        continue;
      }
      size_t p = (size_t)((uintptr_t)a - (uintptr_t)m->base) / PS;
      if (msgs[i].arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP) handle_wp(m, p);
      else handle_missing(m, p, gaddr_of(m, (void *)(uintptr_t)a),
                          msgs[i].arg.pagefault.feat.ptid);
    }
    pthread_mutex_unlock(&G.mu);
  }
  return NULL;
}

/* ---- write-back --------------------------------------------------------- */

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

/* Write back the dirty pages of m in [p0, p1). Under G.mu. */
static int writeback(struct nm_map *m, size_t p0, size_t p1) {
  if (!m->ndirty) return 0;
  /* Protect first: a write from now on faults (and waits for G.mu), so the
   * page cannot change between the diff and the twin being dropped. */
  for (size_t p = p0; p < p1;) {
    if (m->state[p] != PG_DIRTY) {
      p++;
      continue;
    }
    size_t q = p;
    while (q < p1 && m->state[q] == PG_DIRTY) q++;
    int rc = uffd_wp(m->base + p * PS, (q - p) * PS, 1);
    if (rc) {
      logf_("netmem: cannot write-protect %p: %s", m->base + p * PS, strerror(-rc));
      return rc;
    }
    p = q;
  }
  struct iovs s = {0};
  int rc = 0;
  size_t pages = 0;
  for (size_t p = p0; p < p1 && !rc; p++)
    if (m->state[p] == PG_DIRTY) {
      rc = diff_page(&s, gaddr(m, p), m->base + p * PS, m->twin[p]);
      pages++;
    }
  if (!rc && s.n) rc = netmem_writev(G.nm_io, s.v, s.n);
  if (!rc) {
    for (size_t i = 0; i < s.n; i++) G.st.bytes_written_back += s.v[i].len;
    G.st.pages_written_back += pages;
    for (size_t p = p0; p < p1; p++)
      if (m->state[p] == PG_DIRTY) {
        free(m->twin[p]);
        m->twin[p] = NULL;
        m->state[p] = PG_CLEAN;
        m->ndirty--;
      }
  } else {
    G.st.errors++;
    char owner[300] = "?";
    if (s.n) netmem_owner_name(G.nm_io, s.v[0].addr, owner, sizeof owner);
    logf_("netmem: write-back of %zu dirty pages at 0x%" PRIx64 " failed (%s): %s; they stay "
          "dirty",
          pages, gaddr(m, p0), owner, errstr(rc));
  }
  free(s.v);
  return rc;
}

static void renew_locks(void);

/* Background thread: writes back dirty pages every flush interval (when on)
 * and renews held lock leases once a third of their ttl has passed. */
static void *flusher_main(void *arg) {
  (void)arg;
  uint64_t renew_ms = (uint64_t)G.cfg.lock_ttl_s * 1000u / 6u; /* look twice per third */
  if (renew_ms < 100) renew_ms = 100;
  uint64_t wait_ms = renew_ms, next_flush = now_ms() + (uint64_t)G.cfg.flush_interval_ms;
  if (G.cfg.flush_interval_ms > 0 && (uint64_t)G.cfg.flush_interval_ms < wait_ms)
    wait_ms = (uint64_t)G.cfg.flush_interval_ms;
  pthread_mutex_lock(&G.mu);
  while (!G.stopping) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t ns = (uint64_t)ts.tv_nsec + wait_ms * 1000000u;
    ts.tv_sec += (time_t)(ns / 1000000000u);
    ts.tv_nsec = (long)(ns % 1000000000u);
    pthread_cond_timedwait(&G.flush_cv, &G.mu, &ts);
    if (G.stopping) break;
    if (G.cfg.flush_interval_ms > 0 && now_ms() >= next_flush) {
      for (struct nm_map *m = G.maps; m; m = m->next)
        if (m->ndirty) writeback(m, 0, m->npages);
      next_flush = now_ms() + (uint64_t)G.cfg.flush_interval_ms;
    }
    renew_locks();
  }
  pthread_mutex_unlock(&G.mu);
  return NULL;
}

/* ---- init --------------------------------------------------------------- */

static int open_uffd(void) {
  int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    int e = errno;
#ifdef USERFAULTFD_IOC_NEW
    int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
    if (dev >= 0) {
      fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
      close(dev);
    }
#endif
    if (fd < 0) {
      logf_("netmem: userfaultfd: %s (needs root, CAP_SYS_PTRACE or "
            "vm.unprivileged_userfaultfd=1)",
            strerror(e));
      return -e;
    }
  }
  struct uffdio_api api = {.api = UFFD_API,
                           .features = UFFD_FEATURE_PAGEFAULT_FLAG_WP | UFFD_FEATURE_THREAD_ID};
  if (ioctl(fd, UFFDIO_API, &api)) {
    int e = errno;
    logf_("netmem: userfaultfd without write-protect faults (%s): kernel too old", strerror(e));
    close(fd);
    return -EOPNOTSUPP;
  }
  return fd;
}

static void teardown_locked(void);

int netmem_map_init(const struct netmem_route *routes, size_t n,
                    const struct netmem_map_config *cfg) {
  pthread_mutex_lock(&init_mu);
  if (G.inited) {
    pthread_mutex_unlock(&init_mu);
    return -EALREADY;
  }
  struct netmem_map_config c = cfg ? *cfg : (struct netmem_map_config){0};
  if (c.timeout_ms <= 0) c.timeout_ms = NETMEM_DEFAULT_TIMEOUT_MS;
  if (c.readahead_bytes == 0) c.readahead_bytes = DEFAULT_READAHEAD;
  if (c.flush_interval_ms == 0) c.flush_interval_ms = DEFAULT_FLUSH_MS;
  if (c.lock_ttl_s == 0) c.lock_ttl_s = DEFAULT_LOCK_TTL_S;
  if (c.lock_timeout_ms <= 0) c.lock_timeout_ms = DEFAULT_LOCK_TIMEOUT_MS;
  G.cfg = c;
  G.ra_pages = c.readahead_bytes == (size_t)-1 ? 1 : (c.readahead_bytes + PS - 1) / PS;
  if (G.ra_pages < 1) G.ra_pages = 1;
  if (G.ra_pages > 16384) G.ra_pages = 16384; /* 64 MiB */
  int rc = netmem_open(routes, n, &G.nm_fault);
  if (!rc) rc = netmem_open(routes, n, &G.nm_io);
  if (!rc) rc = netmem_set_timeout_ms(G.nm_fault, c.timeout_ms);
  if (!rc) rc = netmem_set_timeout_ms(G.nm_io, c.timeout_ms);
  if (!rc && (c.tls_cert || c.tls_key || c.tls_ca)) {
    rc = netmem_set_tls(G.nm_fault, c.tls_cert, c.tls_key, c.tls_ca);
    if (!rc) rc = netmem_set_tls(G.nm_io, c.tls_cert, c.tls_key, c.tls_ca);
    if (rc) logf_("netmem: TLS: %s", rc == -EINVAL ? netmem_tls_error() : strerror(-rc));
  }
  if (!rc) {
    G.bounce = mmap(NULL, G.ra_pages * PS, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                    -1, 0);
    if (G.bounce == MAP_FAILED) {
      G.bounce = NULL;
      rc = -ENOMEM;
    }
  }
  if (!rc) {
    G.uffd = open_uffd();
    if (G.uffd < 0) rc = G.uffd;
  }
  if (!rc) {
    G.gone_fd = memfd_create("netmem-gone", MFD_CLOEXEC);
    if (G.gone_fd < 0) rc = -errno;
  }
  if (!rc && pipe2(G.stop_pipe, O_CLOEXEC)) rc = -errno;
  if (!rc) {
    /* Our threads take no signals: the program's handlers run on its threads. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    if (G.ra_pages > 1 && pthread_create(&Q.thread, NULL, installer_main, NULL) == 0)
      Q.started = 1;
    rc = -pthread_create(&G.handler, NULL, handler_main, NULL);
    if (!rc) G.inited = 1; /* from here teardown_locked joins the handler */
    if (!rc) {
      rc = -pthread_create(&G.flusher, NULL, flusher_main, NULL);
      if (!rc) G.have_flusher = 1;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
  }
  if (rc) teardown_locked();
  pthread_mutex_unlock(&init_mu);
  return rc;
}

static int parse_routes(const char *text, struct netmem_route **out, char ***hosts, size_t *n) {
  size_t cap = 0;
  const char *p = text;
  while (*p) {
    while (*p && (*p == ',' || *p == ' ' || *p == '\n' || *p == '\t' || *p == '\r')) p++;
    if (*p == '#') {
      while (*p && *p != '\n') p++;
      continue;
    }
    if (!*p) break;
    const char *e = p;
    while (*e && *e != ',' && *e != ' ' && *e != '\n' && *e != '\t' && *e != '\r') e++;
    char spec[400];
    if ((size_t)(e - p) >= sizeof spec) return -EINVAL;
    memcpy(spec, p, (size_t)(e - p));
    spec[e - p] = 0;
    if (*n == cap) {
      cap = cap ? cap * 2 : 8;
      struct netmem_route *r = realloc(*out, cap * sizeof *r);
      char **h = realloc(*hosts, cap * sizeof *h);
      if (r) *out = r;
      if (h) *hosts = h;
      if (!r || !h) return -ENOMEM;
    }
    char *hb = malloc(300);
    if (!hb) return -ENOMEM;
    (*hosts)[*n] = hb;
    int rc = netmem_parse_route(spec, &(*out)[*n], hb, 300);
    (*n)++;
    if (rc) {
      logf_("netmem: bad route \"%s\" (want START:SIZE@HOST:PORT)", spec);
      return rc;
    }
    p = e;
  }
  return 0;
}

static int env_int(const char *name, long long *v) {
  const char *s = getenv(name);
  if (!s || !*s) return 0;
  char *end;
  long long x = strtoll(s, &end, 0);
  if (*end || x < 0) {
    logf_("netmem: %s=%s is not a number >= 0", name, s);
    return -EINVAL;
  }
  *v = x;
  return 1;
}

int netmem_map_init_env(void) {
  if (__atomic_load_n(&G.inited, __ATOMIC_ACQUIRE)) return 0;
  char *text = NULL;
  const char *inline_routes = getenv("NETMEM_ROUTES");
  const char *file = getenv("NETMEM_ROUTES_FILE");
  if (inline_routes && *inline_routes) {
    text = strdup(inline_routes);
  } else if (file && *file) {
    FILE *f = fopen(file, "r");
    if (!f) {
      int e = errno;
      logf_("netmem: NETMEM_ROUTES_FILE %s: %s", file, strerror(e));
      return -e;
    }
    size_t cap = 4096, len = 0;
    text = malloc(cap);
    size_t got;
    while (text && (got = fread(text + len, 1, cap - len - 1, f)) > 0) {
      len += got;
      if (cap - len < 2) {
        char *t = realloc(text, cap *= 2);
        if (!t) free(text);
        text = t;
      }
    }
    fclose(f);
    if (text) text[len] = 0;
  } else {
    logf_("netmem: no layout: set NETMEM_ROUTES or NETMEM_ROUTES_FILE");
    return -EINVAL;
  }
  if (!text) return -ENOMEM;
  struct netmem_route *routes = NULL;
  char **hosts = NULL;
  size_t n = 0;
  int rc = parse_routes(text, &routes, &hosts, &n);
  free(text);
  struct netmem_map_config c = {0};
  long long v;
  int r;
  if (!rc && (r = env_int("NETMEM_TIMEOUT_MS", &v)) != 0) rc = r < 0 ? r : (c.timeout_ms = (int)v, 0);
  if (!rc && (r = env_int("NETMEM_READAHEAD_KB", &v)) != 0)
    rc = r < 0 ? r : (c.readahead_bytes = v ? (size_t)v * 1024 : (size_t)-1, 0);
  if (!rc && (r = env_int("NETMEM_FLUSH_MS", &v)) != 0)
    rc = r < 0 ? r : (c.flush_interval_ms = v ? (int)v : -1, 0);
  if (!rc && (r = env_int("NETMEM_LOCK_TTL_S", &v)) != 0) rc = r < 0 ? r : (c.lock_ttl_s = (uint32_t)v, 0);
  if (!rc && (r = env_int("NETMEM_LOCK_TIMEOUT_MS", &v)) != 0)
    rc = r < 0 ? r : (c.lock_timeout_ms = (int)v, 0);
  c.tls_cert = getenv("NETMEM_TLS_CERT");
  c.tls_key = getenv("NETMEM_TLS_KEY");
  c.tls_ca = getenv("NETMEM_TLS_CA");
  if (!rc) {
    rc = netmem_map_init(routes, n, &c);
    if (rc == -EALREADY) rc = 0;
  }
  for (size_t i = 0; i < n; i++) free(hosts[i]);
  free(hosts);
  free(routes);
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
  if (G.inited) {
    pthread_mutex_lock(&G.mu);
    G.stopping = 1;
    pthread_cond_broadcast(&G.flush_cv);
    pthread_mutex_unlock(&G.mu);
    ssize_t w = write(G.stop_pipe[1], "x", 1);
    (void)w;
    pthread_join(G.handler, NULL);
    if (G.have_flusher) pthread_join(G.flusher, NULL);
  }
  if (Q.started) {
    pthread_mutex_lock(&Q.mu);
    Q.stop = 1;
    pthread_cond_broadcast(&Q.cv);
    pthread_mutex_unlock(&Q.mu);
    pthread_join(Q.thread, NULL);
    Q.started = Q.stop = 0;
    Q.head = Q.tail = 0;
  }
  while (G.maps) {
    struct nm_map *m = G.maps;
    G.maps = m->next;
    munmap(m->base, m->npages * PS);
    free_map(m);
  }
  while (G.locks) {
    struct nm_lock *l = G.locks;
    G.locks = l->next;
    free(l);
  }
  netmem_close(G.nm_fault);
  netmem_close(G.nm_io);
  G.nm_fault = G.nm_io = NULL;
  if (G.bounce) munmap(G.bounce, G.ra_pages * PS);
  G.bounce = NULL;
  if (G.uffd >= 0) close(G.uffd);
  if (G.gone_fd >= 0) close(G.gone_fd);
  for (int i = 0; i < 2; i++)
    if (G.stop_pipe[i] >= 0) close(G.stop_pipe[i]);
  G.uffd = G.gone_fd = G.stop_pipe[0] = G.stop_pipe[1] = -1;
  G.have_flusher = G.stopping = 0;
  G.inited = 0;
}

void netmem_map_shutdown(void) {
  pthread_mutex_lock(&init_mu);
  if (G.inited) {
    pthread_mutex_lock(&G.mu);
    for (struct nm_map *m = G.maps; m; m = m->next) writeback(m, 0, m->npages);
    pthread_mutex_unlock(&G.mu);
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
  pthread_mutex_lock(&G.mu);
  for (size_t i = 0; i < n && !rc; i++) {
    rc = netmem_owned(G.nm_io, ext[i].global, (ext[i].len + PS - 1) / PS * PS);
    if (rc)
      logf_("netmem: cannot map 0x%" PRIx64 "+%zu: no node owns all of it", ext[i].global,
            ext[i].len);
  }
  if (rc) {
    pthread_mutex_unlock(&G.mu);
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
    pthread_mutex_unlock(&G.mu);
    errno = ENOMEM;
    return NULL;
  }
  m->npages = npages;
  m->n_ext = n;
  for (size_t i = 0, p = 0; i < n; i++) {
    m->ext[i] = (struct nm_ext){p, (ext[i].len + PS - 1) / PS, ext[i].global};
    p += m->ext[i].n;
  }
  m->readahead = !(flags & NETMEM_MAP_NOREADAHEAD) && G.ra_pages > 1;
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
    pthread_mutex_unlock(&G.mu);
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
  if (ioctl(G.uffd, UFFDIO_REGISTER, &reg)) {
    int e = errno;
    logf_("netmem: userfaultfd register: %s", strerror(e));
    munmap(base, npages * PS);
    free_map(m);
    pthread_mutex_unlock(&G.mu);
    errno = e;
    return NULL;
  }
  m->next = G.maps;
  G.maps = m;
  pthread_mutex_unlock(&G.mu);
  return base;
}

static int region(void *addr, size_t len, struct nm_map **mp, size_t *p0, size_t *p1) {
  struct nm_map *m = map_of((uintptr_t)addr);
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
  if (!G.inited) return -EINVAL;
  pthread_mutex_lock(&G.mu);
  struct nm_map *m;
  size_t p0, p1;
  int rc = region(addr, len, &m, &p0, &p1);
  if (!rc) rc = writeback(m, p0, p1);
  pthread_mutex_unlock(&G.mu);
  return rc;
}

int netmem_unmap(void *addr) {
  if (!G.inited) return -EINVAL;
  pthread_mutex_lock(&G.mu);
  struct nm_map **pp = &G.maps;
  while (*pp && (*pp)->base != addr) pp = &(*pp)->next;
  struct nm_map *m = *pp;
  if (!m) {
    pthread_mutex_unlock(&G.mu);
    return -EINVAL;
  }
  int rc = writeback(m, 0, m->npages);
  *pp = m->next;
  for (struct nm_lock **lp = &G.locks; *lp;) {
    if ((*lp)->map == m) {
      struct nm_lock *l = *lp;
      *lp = l->next;
      free(l);
    } else {
      lp = &(*lp)->next;
    }
  }
  struct uffdio_range r = {.start = (uintptr_t)m->base, .len = m->npages * PS};
  ioctl(G.uffd, UFFDIO_UNREGISTER, &r);
  munmap(m->base, m->npages * PS);
  free_map(m);
  pthread_mutex_unlock(&G.mu);
  return rc;
}

uint64_t netmem_global_addr(const void *addr) {
  if (!G.inited) return 0;
  pthread_mutex_lock(&G.mu);
  struct nm_map *m = map_of((uintptr_t)addr);
  uint64_t g = m ? gaddr_of(m, addr) : 0;
  pthread_mutex_unlock(&G.mu);
  return g;
}

void netmem_map_get_stats(struct netmem_map_stats *out) {
  pthread_mutex_lock(&G.mu);
  *out = G.st;
  pthread_mutex_unlock(&G.mu);
}

/* Drop the installed pages of [p0, p1) (written back first) so the next access
 * fetches them again. Under G.mu. */
static int drop(struct nm_map *m, size_t p0, size_t p1) {
  int rc = writeback(m, p0, p1);
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

/* Extend every held lease that is a third through its ttl. Under G.mu. */
static void renew_locks(void) {
  uint64_t t = now_ms();
  for (struct nm_lock *l = G.locks; l; l = l->next) {
    uint64_t expiry_ms = (uint64_t)(uint32_t)l->value * 1000u;
    if (l->lost || expiry_ms > t + (uint64_t)G.cfg.lock_ttl_s * 1000u * 2u / 3u) continue;
    uint64_t next = lock_word((uint32_t)(l->value >> 32),
                              (uint32_t)((t + 999) / 1000 + G.cfg.lock_ttl_s));
    uint64_t old;
    int rc = netmem_cas64(G.nm_io, l->word_global, l->value, next, &old);
    if (rc) continue; /* try again next time; the lease is not lost yet */
    if (old == l->value) {
      l->value = next;
    } else {
      l->lost = 1;
      logf_("netmem: the lease on 0x%" PRIx64 " was lost (word %#" PRIx64 "): another holder "
            "may be in the critical section",
            l->word_global, old);
    }
  }
}

int netmem_lock_range(void *addr, void *start, size_t len) {
  if (!G.inited || ((uintptr_t)addr & 7u)) return -EINVAL;
  pthread_mutex_lock(&G.mu);
  struct nm_map *m = map_of((uintptr_t)addr), *rm;
  size_t p0, p1;
  int rc = m ? region(start, len, &rm, &p0, &p1) : -EINVAL;
  if (!rc && rm != m) rc = -EINVAL; /* the guarded region is in the word's mapping */
  uint64_t word = m ? gaddr_of(m, addr) : 0;
  pthread_mutex_unlock(&G.mu);
  if (rc) return rc;
  uint32_t owner = 0;
  while (!owner)
    if (getrandom(&owner, sizeof owner, 0) != sizeof owner) owner = (uint32_t)rand();
  uint64_t deadline = now_ms() + (uint64_t)G.cfg.lock_timeout_ms;
  uint64_t expected = 0, mine, delay_us = 20;
  for (;;) {
    uint64_t t = now_ms();
    mine = lock_word(owner, (uint32_t)((t + 999) / 1000 + G.cfg.lock_ttl_s));
    uint64_t old;
    pthread_mutex_lock(&G.mu);
    rc = netmem_cas64(G.nm_io, word, expected, mine, &old);
    pthread_mutex_unlock(&G.mu);
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
  pthread_mutex_lock(&G.mu);
  m = map_of((uintptr_t)addr);
  rc = !l ? -ENOMEM : !m ? -EINVAL : drop(m, p0, p1);
  if (!rc) {
    *l = (struct nm_lock){.word_global = word, .value = mine, .map = m, .p0 = p0, .p1 = p1,
                          .next = G.locks};
    G.locks = l;
  }
  if (rc) {
    free(l);
    uint64_t old;
    netmem_cas64(G.nm_io, word, mine, 0, &old); /* give it back */
  }
  pthread_mutex_unlock(&G.mu);
  return rc;
}

int netmem_lock(void *addr) { return netmem_lock_range(addr, addr, 0); }

int netmem_unlock(void *addr) {
  if (!G.inited) return -EINVAL;
  pthread_mutex_lock(&G.mu);
  struct nm_map *m = map_of((uintptr_t)addr);
  uint64_t word = m ? gaddr_of(m, addr) : 0;
  struct nm_lock **lp = &G.locks;
  while (*lp && !((*lp)->word_global == word && (*lp)->map == m)) lp = &(*lp)->next;
  struct nm_lock *l = *lp;
  int rc = l ? writeback(m, l->p0, l->p1) : -ENOLCK;
  if (!rc) { /* released only once everything written under it is back */
    uint64_t old;
    rc = netmem_cas64(G.nm_io, word, l->value, 0, &old);
    if (!rc && old != l->value) {
      logf_("netmem: unlock of 0x%" PRIx64 ": the lease was lost (word %#" PRIx64 ")", word, old);
      rc = -ENOLCK;
    }
    *lp = l->next;
    free(l);
  }
  pthread_mutex_unlock(&G.mu);
  return rc;
}
