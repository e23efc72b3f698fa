/*
 * netmem.h - client library of amalgam's network memory space.
 *
 * The global address space is cut into ranges, each served by one page server
 * (native/pageserver) over the wire protocol in include/amalgam_wire.h. A
 * struct netmem holds the layout (routes) and one connection per route; every
 * call routes its bytes to the owners, splits a request that crosses range
 * boundaries, cuts it into chunks of at most AMW_MAX_PAYLOAD, and pipelines the
 * chunks (up to NETMEM_WINDOW requests and NETMEM_WINDOW_BYTES of responses in
 * flight per connection, all connections at once, responses matched by
 * request id).
 *
 * Transport: plaintext TCP (page servers started with --plaintext-loopback) or
 * mutual TLS (netmem_set_tls; OpenSSL, when built with it).
 *
 * Threads: a struct netmem is not thread-safe; give each thread its own (they
 * may share a layout). Connections are opened lazily on first use of a route
 * and reopened on the next call after a failure.
 *
 * Every function returns 0 or a negative errno:
 *   -EINVAL       bad arguments (overlapping or empty routes, unaligned atomics)
 *   -EFAULT       some byte of [addr, addr+len) is owned by no route; nothing
 *                 was sent. Also a page server answering E_OUT_OF_RANGE (the
 *                 layout given here disagrees with the server).
 *   -ECONNRESET   the owner's connection dropped during the call (server gone)
 *   -ECONNREFUSED the owner could not be (re)connected
 *   -ETIMEDOUT    no progress for the timeout (netmem_set_timeout_ms) while
 *                 waiting on an owner, or a connect that did not complete
 *   -EPROTO       the server sent something that is not a valid response
 *   -EMSGSIZE, -EOPNOTSUPP  other server statuses (should not happen)
 *   -ENOMEM       allocation failure
 * A failed netmem_write may have written some chunks and not others; a failed
 * netmem_read leaves buf partly filled.
 */
#ifndef AMALGAM_NETMEM_H
#define AMALGAM_NETMEM_H

#include <stddef.h>
#include <stdint.h>

#define NETMEM_DEFAULT_TIMEOUT_MS 5000
#define NETMEM_WINDOW 64 /* requests in flight per connection */
/* Response bytes awaited per connection. Kept below the page server's 4 MiB
 * output high-water mark: a server whose output reaches it with requests still
 * buffered can stall until the client sends more (see native/README.md). */
#ifndef NETMEM_WINDOW_BYTES
#define NETMEM_WINDOW_BYTES (3u << 20)
#endif

struct netmem;

/* One range of the layout: [start, start + size) is owned by node and served
 * by its page server at host:port. Over TLS the server's certificate must be
 * exactly that node's (CN node:<node>): another node's page server answering
 * at that address is refused before any request is sent (-EACCES). */
struct netmem_route {
  uint64_t start;
  uint64_t size;
  const char *host; /* copied by netmem_open */
  uint16_t port;
  char node[64]; /* the owner's name, an RFC 1123 label */
};

/* Copy the layout (ranges must be non-empty and must not overlap). No connection
 * is made yet. */
int netmem_open(const struct netmem_route *routes, size_t n, struct netmem **out);
/* Close every connection and free nm (NULL is fine). */
void netmem_close(struct netmem *nm);
/* Timeout in milliseconds (> 0) for connecting and for each wait on a server. */
int netmem_set_timeout_ms(struct netmem *nm, int ms);
/* Mutual TLS to every page server from now on (PEM files: this node's
 * certificate and key, the cluster CA). The server's certificate must chain to
 * the CA and name exactly the route's node (CN node:<node>, O amalgam:nodes).
 * -EINVAL when a file cannot be used (netmem_tls_error() says why),
 * -EOPNOTSUPP when built without OpenSSL. A handshake that fails is -EACCES
 * (the server's certificate was refused, e.g. another node's: the failure is
 * logged on stderr and netmem_tls_error() says which node was expected and
 * which certificate answered) or -ECONNREFUSED / -ECONNRESET (the server
 * refused ours). */
int netmem_set_tls(struct netmem *nm, const char *cert_file, const char *key_file,
                   const char *ca_file);
/* The last TLS failure of this thread, as one line. */
const char *netmem_tls_error(void);

int netmem_read(struct netmem *nm, uint64_t addr, void *buf, size_t len);
int netmem_write(struct netmem *nm, uint64_t addr, const void *buf, size_t len);

/* Several pieces in one call, all pipelined (any order; pieces must not
 * overlap for a read). */
struct netmem_iov {
  uint64_t addr;
  void *buf;
  size_t len;
};
int netmem_readv(struct netmem *nm, const struct netmem_iov *iov, size_t n);
/* A read in requests of at most `chunk` bytes (0: 1 MiB), all pipelined; cb
 * runs for each piece as soon as it has arrived (pieces of one owner in address
 * order), while later ones are still on the wire. A non-zero return of cb
 * becomes the call's result (the remaining pieces are still received). */
typedef int (*netmem_chunk_cb)(void *ctx, uint64_t addr, void *buf, size_t len);
int netmem_read_stream(struct netmem *nm, uint64_t addr, void *buf, size_t len, size_t chunk,
                       netmem_chunk_cb cb, void *ctx);
int netmem_writev(struct netmem *nm, const struct netmem_iov *iov, size_t n);
/* addr must be 8-aligned. *old receives the previous value; the swap happened
 * iff *old == expected. old may be NULL. */
int netmem_cas64(struct netmem *nm, uint64_t addr, uint64_t expected, uint64_t desired,
                 uint64_t *old);
/* Wrapping add; addr 8-aligned; old may be NULL. */
int netmem_fetch_add64(struct netmem *nm, uint64_t addr, uint64_t delta, uint64_t *old);

/* 0 when every byte of [addr, addr+len) has an owner, else -EFAULT. */
int netmem_owned(const struct netmem *nm, uint64_t addr, size_t len);
/* "host:port" of the owner of addr into buf (-EFAULT and "no owner" if none). */
int netmem_owner_name(const struct netmem *nm, uint64_t addr, char *buf, size_t len);

/* Parse "START:SIZE=NODE@HOST:PORT" (numbers decimal or 0x hex, SIZE may end
 * in K/M/G, NODE the owner's name, HOST may be [v6]), e.g.
 * "0x40000000:16M=node-a@10.0.0.7:7070". out->host points into hostbuf. */
int netmem_parse_route(const char *spec, struct netmem_route *out, char *hostbuf,
                       size_t hostbuf_len);

/* ---- Mapping network memory into the process (netmem_map.c) ------------
 *
 * netmem_map() returns an ordinary pointer to [global_addr, global_addr+len)
 * of the network memory space. The region is anonymous memory registered with
 * userfaultfd (missing and write-protect faults): a handler thread fetches each
 * page on its first touch from the owner's page server and installs it
 * (UFFDIO_COPY, write-protected); a fault right after the previous fetched
 * range counts as sequential and fetches the read-ahead window instead of one
 * page. The first write to an installed page takes a write-protect fault: the
 * handler keeps a copy (twin) of the page and lets the write through. Dirty
 * pages are written back as the aligned 8-byte words that differ from their
 * twin (so words this process did not change, e.g. a lock word on the same
 * page, are never overwritten) on netmem_sync(), netmem_unmap(),
 * netmem_unlock(), and by a background flusher.
 *
 * Consistency is release consistency: another process sees this process's
 * writes after it wrote them back (netmem_sync / netmem_unlock / the flusher),
 * and this process sees another's writes only for pages it fetches after they
 * were written back: netmem_lock() drops the cached pages of the locked region
 * so they are fetched again. Data shared between processes must be guarded by
 * a netmem_lock.
 *
 * A fetch that fails (owner gone, refused, no answer within the timeout) is
 * logged on stderr ("netmem: ...") and the faulting access gets SIGBUS, never a
 * hang. An address no route owns cannot be mapped (EFAULT).
 *
 * The layout comes from netmem_map_init(), or on first use from the
 * environment: NETMEM_ROUTES ("START:SIZE=NODE@HOST:PORT" separated by commas,
 * spaces or newlines) or NETMEM_ROUTES_FILE (one route per line, # comments),
 * NETMEM_TIMEOUT_MS, NETMEM_READAHEAD_KB, NETMEM_FLUSH_MS, NETMEM_LOCK_TTL_S,
 * NETMEM_LOCK_TIMEOUT_MS, and NETMEM_TLS_CERT + NETMEM_TLS_KEY + NETMEM_TLS_CA
 * for page servers on mutual TLS.
 *
 * One process-wide state; every function is thread-safe. Linux only, needs
 * userfaultfd with write-protect support (5.7+ for anonymous memory) and the
 * permission to use it (root or vm.unprivileged_userfaultfd=1). Mappings are
 * not inherited by fork() children (MADV_DONTFORK: a child's access faults).
 */
struct netmem_map_config {
  int timeout_ms;         /* each fetch/write-back; 0: NETMEM_DEFAULT_TIMEOUT_MS */
  size_t readahead_bytes; /* sequential window; 0: default 8 MiB; (size_t)-1: off */
  int flush_interval_ms;  /* background write-back period; 0: 1000; < 0: off (env 0: off) */
  uint32_t lock_ttl_s;    /* lease of netmem_lock; 0: 30 */
  int lock_timeout_ms;    /* netmem_lock gives up (-ETIMEDOUT); 0: 30000 */
  /* Mutual TLS to the page servers when all three are set (netmem_set_tls). */
  const char *tls_cert, *tls_key, *tls_ca;
};

#define NETMEM_MAP_FIXED 1        /* map at the virtual address == global_addr */
#define NETMEM_MAP_NOREADAHEAD 2  /* one page per fault */

/* Process-wide layout and settings; cfg may be NULL (defaults). -EALREADY when
 * initialized; -EOPNOTSUPP/-EPERM when userfaultfd cannot be used. */
int netmem_map_init(const struct netmem_route *routes, size_t n,
                    const struct netmem_map_config *cfg);
/* Initialize from the environment (see above); 0 when already initialized. */
int netmem_map_init_env(void);
/* Write back every mapping, unmap them, stop the threads. */
void netmem_map_shutdown(void);

/* Returns the local address of the mapping, or NULL with errno set (EFAULT: some
 * page has no owner; EINVAL: global_addr not page-aligned or len 0; EEXIST:
 * NETMEM_MAP_FIXED and the address is taken). len is rounded up to pages. */
void *netmem_map(uint64_t global_addr, size_t len, int flags);
/* Several global ranges (e.g. the extents of a segment, in segment order) back
 * to back in one mapping: local byte k of the mapping is byte k of their
 * concatenation. Each global address page-aligned, each length but the last a
 * whole number of pages. NETMEM_MAP_FIXED only with one extent. Read-ahead
 * stops at an extent's end; a fault at the next extent's start continues it. */
struct netmem_extent {
  uint64_t global;
  size_t len;
};
void *netmem_map_extents(const struct netmem_extent *ext, size_t n, int flags);
/* Write back the dirty pages of [addr, addr+len) (len 0: the whole mapping that
 * holds addr). 0 or -errno (pages that failed stay dirty). */
int netmem_sync(void *addr, size_t len);
/* Write back and unmap the mapping that starts at addr. Returns the write-back
 * result (the mapping is gone either way). */
int netmem_unmap(void *addr);

/* Lease lock on the 8-aligned word at addr (inside a mapping), compatible with
 * services/client/network-lock.ts (owner u32 << 32 | expiry u32 Unix seconds,
 * 0 free; an expired lease is taken over). The lock guards [start, start+len)
 * (netmem_lock: the whole mapping). Acquiring writes back this process's dirty
 * pages of the region and drops its cached pages so they are fetched again;
 * unlocking writes back the dirty pages of the region, then frees the word.
 * -ETIMEDOUT after lock_timeout_ms; netmem_unlock: -ENOLCK when the lease was
 * lost (the word holds another owner or is free). A held lease is renewed in
 * the background once a third of lock_ttl_s has passed. */
int netmem_lock(void *addr);
int netmem_lock_range(void *addr, void *start, size_t len);
int netmem_unlock(void *addr);

/* The global address behind a mapped pointer (0 if not mapped). */
uint64_t netmem_global_addr(const void *addr);

struct netmem_map_stats {
  uint64_t missing_faults, wp_faults, pages_fetched, fetches, pages_written_back,
      bytes_written_back, errors;
};
void netmem_map_get_stats(struct netmem_map_stats *out);

#endif /* AMALGAM_NETMEM_H */
