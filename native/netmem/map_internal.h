/*
 * map_internal.h - what the parts of the netmem mapper share (not installed;
 * the API is netmem.h). The mapper is one process-wide state, nmm_g, guarded
 * by nmm_g.mu:
 *   - a userfaultfd (missing + write-protect faults) read by one handler
 *     thread (map_faults.c); it resolves faults under nmm_g.mu with its own
 *     struct netmem (nm_fault), so a fetch never races a lock's drop of the
 *     same pages; pages are fetched and installed by map_install.c;
 *   - every mapping's page states (missing, clean = installed write-protected,
 *     dirty = writable with a twin copy, gone = replaced by a SIGBUS mapping);
 *   - a second struct netmem (nm_io) for write-back (map_writeback.c) and lock
 *     words (map_locks.c), used under nmm_g.mu by netmem_sync/unmap/lock/unlock
 *     and the flusher thread.
 * Code holding nmm_g.mu only touches installed pages of a mapping (twins,
 * diffs), so it never faults on a registered page itself.
 *
 * Every name here starts with nmm_ and is hidden: libnetmem.a is linked into
 * programs, and libnetmem-preload.so is injected into unmodified ones.
 */
#ifndef AMALGAM_NETMEM_MAP_INTERNAL_H
#define AMALGAM_NETMEM_MAP_INTERNAL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "netmem.h"

#pragma GCC visibility push(hidden)

#define PS 4096u

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

struct nmm_state {
  int inited;
  pthread_mutex_t mu;
  pthread_cond_t flush_cv;
  struct netmem_map_config cfg; /* with the defaults filled in (nmm_settings_resolve) */
  size_t ra_pages;
  struct netmem *nm_fault, *nm_io;
  int uffd, gone_fd, stop_pipe[2];
  pthread_t handler, flusher;
  int have_flusher, stopping;
  struct nm_map *maps;
  struct nm_lock *locks;
  uint8_t *bounce; /* ra_pages pages, handler thread only */
  struct netmem_map_stats st;
};
extern struct nmm_state nmm_g;

/* netmem_map.c: logging, time, and where an address is. */
void nmm_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
const char *nmm_errstr(int neg);
uint64_t nmm_now_ms(void);
struct nm_map *nmm_map_of(uintptr_t a);
const struct nm_ext *nmm_ext_of(const struct nm_map *m, size_t p);
uint64_t nmm_gaddr(const struct nm_map *m, size_t p);
uint64_t nmm_gaddr_of(const struct nm_map *m, const void *addr);
int nmm_region(void *addr, size_t len, struct nm_map **mp, size_t *p0, size_t *p1);

/* map_settings.c: cfg (may be NULL) with its defaults filled in, and the
 * read-ahead window in pages. */
void nmm_settings_resolve(const struct netmem_map_config *cfg, struct netmem_map_config *out,
                          size_t *ra_pages);

/* map_install.c: userfaultfd ioctls, installing fetched pages, failed pages. */
int nmm_uffd_wake(void *addr, size_t len);
int nmm_uffd_wp(void *addr, size_t len, int protect);
void nmm_make_gone(struct nm_map *m, size_t p);
int nmm_fetch(struct nm_map *m, size_t p, size_t n);
/* The installer thread of read-ahead windows (only when ra_pages > 1). */
void nmm_installer_start(void);
void nmm_installer_stop(void);

/* map_faults.c: the userfaultfd and the fault-handler thread. */
int nmm_open_uffd(void);
void *nmm_handler_main(void *arg);

/* map_writeback.c: twins, word diffs, the flusher thread. */
int nmm_writeback(struct nm_map *m, size_t p0, size_t p1);
void *nmm_flusher_main(void *arg);

/* map_locks.c: lease renewal, run by the flusher. */
void nmm_renew_locks(void);

#pragma GCC visibility pop

#endif
