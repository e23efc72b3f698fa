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
 * Transport: plaintext TCP only in this slice (page servers started with
 * --plaintext-loopback). Mutual TLS comes next.
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

/* One range of the layout: [start, start + size) is served at host:port. */
struct netmem_route {
  uint64_t start;
  uint64_t size;
  const char *host; /* copied by netmem_open */
  uint16_t port;
};

/* Copy the layout (ranges must be non-empty and must not overlap). No connection
 * is made yet. */
int netmem_open(const struct netmem_route *routes, size_t n, struct netmem **out);
/* Close every connection and free nm (NULL is fine). */
void netmem_close(struct netmem *nm);
/* Timeout in milliseconds (> 0) for connecting and for each wait on a server. */
int netmem_set_timeout_ms(struct netmem *nm, int ms);

int netmem_read(struct netmem *nm, uint64_t addr, void *buf, size_t len);
int netmem_write(struct netmem *nm, uint64_t addr, const void *buf, size_t len);
/* addr must be 8-aligned. *old receives the previous value; the swap happened
 * iff *old == expected. old may be NULL. */
int netmem_cas64(struct netmem *nm, uint64_t addr, uint64_t expected, uint64_t desired,
                 uint64_t *old);
/* Wrapping add; addr 8-aligned; old may be NULL. */
int netmem_fetch_add64(struct netmem *nm, uint64_t addr, uint64_t delta, uint64_t *old);

/* Parse "START:SIZE@HOST:PORT" (numbers decimal or 0x hex, SIZE may end in K/M/G,
 * HOST may be [v6]). out->host points into hostbuf. */
int netmem_parse_route(const char *spec, struct netmem_route *out, char *hostbuf,
                       size_t hostbuf_len);

#endif /* AMALGAM_NETMEM_H */
