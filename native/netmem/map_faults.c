/*
 * map_faults.c - the userfaultfd and the one fault-handler thread that reads
 * it: a missing fault fetches the page (and the read-ahead window of a
 * sequential scan), a write-protect fault keeps a twin of the page and lets
 * the write through. See map_internal.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "map_internal.h"

static void handle_missing(struct nm_map *m, size_t p, uint64_t fault_addr, uint32_t tid) {
  nmm_g.st.missing_faults++;
  if (m->state[p] != PG_MISSING) { /* installed meanwhile (or gone): retry the access */
    nmm_uffd_wake(m->base + p * PS, PS);
    return;
  }
  size_t want = m->readahead && p == m->seq_next ? nmm_g.ra_pages : 1, n = 0;
  const struct nm_ext *e = nmm_ext_of(m, p);
  while (n < want && p + n < e->p0 + e->n && m->state[p + n] == PG_MISSING) n++;
  int rc = nmm_fetch(m, p, n);
  if (rc && m->state[p] == PG_MISSING && n > 1)
    rc = nmm_fetch(m, p, n = 1); /* the window may reach a dead owner */
  if (!rc || m->state[p] != PG_MISSING) { /* the faulting page is in */
    m->seq_next = p + n;
    return;
  }
  char owner[300];
  netmem_owner_name(nmm_g.nm_fault, nmm_gaddr(m, p), owner, sizeof owner);
  nmm_g.st.errors++;
  const char *tls = netmem_tls_error();
  nmm_log("netmem: page 0x%" PRIx64 " (address %#" PRIx64 ", thread %u) could not be fetched from "
        "%s: %s%s%s; the access gets SIGBUS",
        nmm_gaddr(m, p), fault_addr, tid, owner, nmm_errstr(rc), nmm_g.cfg.tls_ca && *tls ? "; " : "",
        nmm_g.cfg.tls_ca && *tls ? tls : "");
  nmm_make_gone(m, p);
}

static void handle_wp(struct nm_map *m, size_t p) {
  nmm_g.st.wp_faults++;
  uint8_t *page = m->base + p * PS;
  if (m->state[p] == PG_CLEAN) {
    uint8_t *twin = malloc(PS);
    if (!twin) {
      nmm_log("netmem: out of memory for the twin of page %p; the access gets SIGBUS", page);
      nmm_make_gone(m, p);
      return;
    }
    memcpy(twin, page, PS);
    m->twin[p] = twin;
    m->state[p] = PG_DIRTY;
    m->ndirty++;
  } else if (m->state[p] != PG_DIRTY) {
    nmm_uffd_wake(page, PS); /* dropped or gone meanwhile: the retry faults again */
    return;
  }
  int rc = nmm_uffd_wp(page, PS, 0); /* writable; wakes the writer */
  if (rc) nmm_log("netmem: cannot unprotect page %p: %s", page, strerror(-rc));
}

void *nmm_handler_main(void *arg) {
  (void)arg;
  struct uffd_msg msgs[64];
  for (;;) {
    struct pollfd p[2] = {{.fd = nmm_g.uffd, .events = POLLIN}, {.fd = nmm_g.stop_pipe[0], .events = POLLIN}};
    if (poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      nmm_log("netmem: fault handler: poll: %s", strerror(errno));
      break;
    }
    if (p[1].revents) break;
    ssize_t r = read(nmm_g.uffd, msgs, sizeof msgs);
    if (r < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      nmm_log("netmem: fault handler: read: %s", strerror(errno));
      break;
    }
    size_t cnt = (size_t)r / sizeof msgs[0];
    pthread_mutex_lock(&nmm_g.mu);
    for (size_t i = 0; i < cnt; i++) {
      if (msgs[i].event != UFFD_EVENT_PAGEFAULT) continue;
      uint64_t a = msgs[i].arg.pagefault.address;
      struct nm_map *m = nmm_map_of((uintptr_t)a);
      if (!m) {
        nmm_uffd_wake((void *)(uintptr_t)(a & ~(uint64_t)(PS - 1)), PS);
        continue;
      }
      size_t p = (size_t)((uintptr_t)a - (uintptr_t)m->base) / PS;
      if (msgs[i].arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP) handle_wp(m, p);
      else handle_missing(m, p, nmm_gaddr_of(m, (void *)(uintptr_t)a),
                          msgs[i].arg.pagefault.feat.ptid);
    }
    pthread_mutex_unlock(&nmm_g.mu);
  }
  return NULL;
}

int nmm_open_uffd(void) {
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
      nmm_log("netmem: userfaultfd: %s (needs root, CAP_SYS_PTRACE or "
            "vm.unprivileged_userfaultfd=1)",
            strerror(e));
      return -e;
    }
  }
  struct uffdio_api api = {.api = UFFD_API,
                           .features = UFFD_FEATURE_PAGEFAULT_FLAG_WP | UFFD_FEATURE_THREAD_ID};
  if (ioctl(fd, UFFDIO_API, &api)) {
    int e = errno;
    nmm_log("netmem: userfaultfd without write-protect faults (%s): kernel too old", strerror(e));
    close(fd);
    return -EOPNOTSUPP;
  }
  return fd;
}
