/*
 * netmem.c - see netmem.h. One call = a list of ops (one request each), grouped
 * by route (routes are sorted, so an address-ordered list is already grouped);
 * a poll loop then pushes every route's requests and collects its responses
 * concurrently.
 */
#include "netmem.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "../common/conn.h"
#include "../common/numparse.h"
#include "../common/tls_peer.h"
#include "amalgam_wire.h"

#ifndef AMALGAM_NO_TLS
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <signal.h>
#endif

struct nm_route {
  uint64_t start, size;
  char *host;
  uint16_t port;
  char node[64]; /* the owner: its page server must present node:<node> */
  int fd; /* -1: not connected */
#ifndef AMALGAM_NO_TLS
  SSL *ssl; /* with netmem_set_tls: the session on fd */
#endif
};

struct netmem {
  struct nm_route *r;
  size_t n;
  int timeout_ms;
  uint64_t next_id;
  /* netmem_read_stream: called for each READ piece as it completes */
  netmem_chunk_cb chunk_cb;
  void *chunk_ctx;
#ifndef AMALGAM_NO_TLS
  SSL_CTX *tls; /* NULL: plaintext */
#endif
};

struct nm_op {
  size_t route;
  uint8_t opcode;
  uint64_t addr;
  uint32_t len;   /* header length field */
  uint8_t *rbuf;  /* READ: destination */
  const uint8_t *wbuf; /* WRITE: source */
  uint8_t req[AMW_REQ_HEADER_SIZE + 16]; /* header + atomic payload */
  uint32_t plen;  /* payload bytes after the header */
  uint64_t id;
  uint8_t result[8]; /* atomics: old value (little-endian) */
  uint16_t rflags;
  uint32_t status;
};

/* Per-route progress of one call. */
struct nm_xfer {
  size_t route;
  size_t first, end;      /* ops[first, end) go to this route */
  size_t send_i, send_off; /* next op to send and bytes of it already sent */
  size_t recv_i;           /* next op whose response is awaited */
  uint8_t hdr[AMW_RESP_HEADER_SIZE];
  size_t hdr_off;
  size_t pay_off, pay_len;
  uint64_t inflight; /* response bytes of sent, unanswered requests */
  struct netmem *nm;
  int err;  /* first error (status or connection) */
  int dead; /* connection failed: stop */
};

static int cmp_route(const void *a, const void *b) {
  const struct nm_route *x = a, *y = b;
  return x->start < y->start ? -1 : x->start > y->start;
}

int netmem_open(const struct netmem_route *routes, size_t n, struct netmem **out) {
  if (!out || (n && !routes)) return -EINVAL;
  struct netmem *nm = calloc(1, sizeof *nm);
  if (!nm) return -ENOMEM;
  nm->timeout_ms = NETMEM_DEFAULT_TIMEOUT_MS;
  nm->next_id = 1;
  nm->r = calloc(n ? n : 1, sizeof *nm->r);
  if (!nm->r) {
    free(nm);
    return -ENOMEM;
  }
  for (size_t i = 0; i < n; i++) nm->r[i].fd = -1;
  nm->n = n;
  int err = 0;
  for (size_t i = 0; i < n && !err; i++) {
    const struct netmem_route *s = &routes[i];
    if (!s->size || !s->host || !*s->host || !s->port || s->start + s->size < s->start ||
        !memchr(s->node, 0, sizeof s->node) || !amc_node_name_valid(s->node)) {
      err = -EINVAL;
      break;
    }
    memcpy(nm->r[i].node, s->node, sizeof s->node);
    nm->r[i].start = s->start;
    nm->r[i].size = s->size;
    nm->r[i].port = s->port;
    nm->r[i].host = strdup(s->host);
    if (!nm->r[i].host) err = -ENOMEM;
  }
  if (!err) {
    qsort(nm->r, n, sizeof *nm->r, cmp_route);
    for (size_t i = 1; i < n; i++)
      if (nm->r[i - 1].start + nm->r[i - 1].size > nm->r[i].start) err = -EINVAL;
  }
  if (err) {
    netmem_close(nm);
    return err;
  }
  *out = nm;
  return 0;
}

static void route_disconnect(struct nm_route *r) {
#ifndef AMALGAM_NO_TLS
  if (r->ssl) SSL_free(r->ssl); /* no close_notify: the connection is dead or unwanted */
  r->ssl = NULL;
#endif
  if (r->fd >= 0) close(r->fd);
  r->fd = -1;
}

void netmem_close(struct netmem *nm) {
  if (!nm) return;
  for (size_t i = 0; i < nm->n; i++) {
    route_disconnect(&nm->r[i]);
    free(nm->r[i].host);
  }
#ifndef AMALGAM_NO_TLS
  SSL_CTX_free(nm->tls);
#endif
  free(nm->r);
  free(nm);
}

#ifndef AMALGAM_NO_TLS
static __thread char tls_err[512];

const char *netmem_tls_error(void) { return tls_err; }

static void set_tls_err(const char *what) {
  char detail[200];
  amc_tls_last_error(detail, sizeof detail);
  snprintf(tls_err, sizeof tls_err, "%s: %s", what, detail);
}

int netmem_set_tls(struct netmem *nm, const char *cert_file, const char *key_file,
                   const char *ca_file) {
  if (!nm || !cert_file || !key_file || !ca_file) return -EINVAL;
  /* The page server's certificate must chain to the cluster CA and name a node. */
  SSL_CTX *ctx;
  int rc = amc_tls_client_ctx(&ctx, cert_file, key_file, ca_file, AMC_PEER_NODE, tls_err,
                              sizeof tls_err);
  if (rc) return rc;
  for (size_t i = 0; i < nm->n; i++) route_disconnect(&nm->r[i]);
  SSL_CTX_free(nm->tls);
  nm->tls = ctx;
  return 0;
}

/* SSL_write writes to the socket with write(2): a peer that went away would
 * raise SIGPIPE. Block it around the call and swallow one raised meanwhile. */
static int ssl_write_nosig(SSL *ssl, const void *buf, int len) {
  sigset_t pipe_set, old;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
  int n = SSL_write(ssl, buf, len);
  int saved = errno;
  sigset_t pending;
  sigpending(&pending);
  if (sigismember(&pending, SIGPIPE) && !sigismember(&old, SIGPIPE)) {
    struct timespec zero = {0, 0};
    sigtimedwait(&pipe_set, NULL, &zero);
  }
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  errno = saved;
  return n;
}

/* Map an SSL_read/SSL_write result: > 0 bytes, 0 would block, -errno. */
static ssize_t ssl_result(SSL *ssl, int n) {
  if (n > 0) return n;
  int e = SSL_get_error(ssl, n);
  if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return 0;
  if (e == SSL_ERROR_SYSCALL && errno && errno != EPIPE && errno != ECONNRESET) {
    ERR_clear_error();
    return -errno;
  }
  set_tls_err("TLS connection");
  return -ECONNRESET;
}

/*
 * Handshake within the timeout; the server's certificate is verified and must
 * be the route's node's. A certificate refused is logged (one line): a client
 * pointed at the wrong page server must be visible, not a silent EIO.
 */
static int tls_handshake(struct netmem *nm, struct nm_route *r) {
  char why[200];
  int rc = amc_tls_handshake(nm->tls, r->fd, r->host, r->node, nm->timeout_ms, &r->ssl, why,
                             sizeof why);
  if (rc) {
    snprintf(tls_err, sizeof tls_err, "TLS handshake with %s:%u for node %s: %s", r->host,
             (unsigned)r->port, r->node, why);
    if (rc == -EACCES) fprintf(stderr, "netmem: %s\n", tls_err);
  }
  return rc;
}
#else
int netmem_set_tls(struct netmem *nm, const char *cert_file, const char *key_file,
                   const char *ca_file) {
  (void)nm, (void)cert_file, (void)key_file, (void)ca_file;
  return -EOPNOTSUPP;
}
const char *netmem_tls_error(void) { return "built without OpenSSL"; }
#endif

/* > 0 bytes sent, 0 would block, -errno. */
static ssize_t io_send(struct nm_route *r, struct iovec *iov, int cnt) {
#ifndef AMALGAM_NO_TLS
  if (r->ssl) {
    size_t len = iov[0].iov_len > INT32_MAX ? INT32_MAX : iov[0].iov_len;
    return ssl_result(r->ssl, ssl_write_nosig(r->ssl, iov[0].iov_base, (int)len));
  }
#endif
  struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)cnt};
  for (;;) {
    ssize_t n = sendmsg(r->fd, &mh, MSG_NOSIGNAL);
    if (n >= 0) return n;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
    return errno == EPIPE || errno == ECONNABORTED ? -ECONNRESET : -errno;
  }
}

/* > 0 bytes received, 0 would block, -errno (-ECONNRESET at end of stream). */
static ssize_t io_recv(struct nm_route *r, void *buf, size_t len) {
#ifndef AMALGAM_NO_TLS
  if (r->ssl) {
    if (len > INT32_MAX) len = INT32_MAX;
    return ssl_result(r->ssl, SSL_read(r->ssl, buf, (int)len));
  }
#endif
  for (;;) {
    ssize_t n = recv(r->fd, buf, len, 0);
    if (n > 0) return n;
    if (n == 0) return -ECONNRESET;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
    return errno == EPIPE || errno == ECONNABORTED ? -ECONNRESET : -errno;
  }
}

/* Decrypted bytes waiting inside the TLS session (poll cannot see them). */
static int io_pending(const struct nm_route *r) {
#ifndef AMALGAM_NO_TLS
  return r->ssl && SSL_pending(r->ssl) > 0;
#else
  (void)r;
  return 0;
#endif
}

int netmem_set_timeout_ms(struct netmem *nm, int ms) {
  if (!nm || ms <= 0) return -EINVAL;
  nm->timeout_ms = ms;
  return 0;
}

/* Non-blocking connect bounded by the timeout (then the TLS handshake). */
static int route_connect(struct netmem *nm, struct nm_route *r) {
  if (r->fd >= 0) {
    /*
     * A page server never speaks unasked: between calls, a readable socket is
     * one it closed (its idle timeout, a restart, a revoked peer). Reconnect
     * now rather than fail this call on a dead connection.
     */
    struct pollfd p = {.fd = r->fd, .events = POLLIN};
    if (poll(&p, 1, 0) == 0) return 0;
    route_disconnect(r);
  }
  char port[8];
  snprintf(port, sizeof port, "%u", (unsigned)r->port);
  int err = amc_dial(r->host, port, nm->timeout_ms, &r->fd);
#ifndef AMALGAM_NO_TLS
  if (!err && nm->tls) {
    err = tls_handshake(nm, r);
    if (err) route_disconnect(r);
  }
#endif
  return err;
}

static int status_errno(uint32_t status) {
  switch (status) {
  case AMW_OK: return 0;
  case AMW_E_OUT_OF_RANGE: return -EFAULT;
  case AMW_E_TOO_LARGE: return -EMSGSIZE;
  case AMW_E_UNSUPPORTED: return -EOPNOTSUPP;
  case AMW_E_UNALIGNED:
  case AMW_E_BAD_REQUEST: return -EINVAL;
  default: return -EPROTO;
  }
}


static uint64_t resp_bytes(const struct nm_op *op) {
  return AMW_RESP_HEADER_SIZE + (op->opcode == AMW_OP_READ ? op->len : 8u);
}

/* Whether the next request may go out: within NETMEM_WINDOW requests and
 * NETMEM_WINDOW_BYTES of awaited response bytes (one request always may). */
static int can_send(const struct nm_op *ops, const struct nm_xfer *x) {
  if (x->send_i >= x->end) return 0;
  if (x->send_off > 0 || x->send_i == x->recv_i) return 1;
  return x->send_i - x->recv_i < NETMEM_WINDOW &&
         x->inflight + resp_bytes(&ops[x->send_i]) <= NETMEM_WINDOW_BYTES;
}

/* Send as much as the socket takes, within the window. Returns 0 or -errno. */
static int xfer_send(struct nm_op *ops, struct nm_xfer *x, struct nm_route *r) {
  while (can_send(ops, x)) {
    struct nm_op *op = &ops[x->send_i];
    if (x->send_off == 0) x->inflight += resp_bytes(op);
    size_t hlen = AMW_REQ_HEADER_SIZE + (op->wbuf ? 0 : op->plen);
    size_t total = AMW_REQ_HEADER_SIZE + op->plen;
    struct iovec iov[2];
    int cnt = 0;
    if (x->send_off < hlen) {
      iov[cnt].iov_base = op->req + x->send_off;
      iov[cnt++].iov_len = hlen - x->send_off;
    }
    if (op->wbuf) {
      size_t o = x->send_off > hlen ? x->send_off - hlen : 0;
      iov[cnt].iov_base = (void *)(op->wbuf + o);
      iov[cnt++].iov_len = op->plen - o;
    }
    ssize_t n = io_send(r, iov, cnt);
    if (n < 0) return (int)n;
    if (n == 0) return 0;
    x->send_off += (size_t)n;
    if (x->send_off == total) {
      x->send_i++;
      x->send_off = 0;
    }
  }
  return 0;
}

/* Read responses as far as available. Returns 0 or -errno (connection unusable). */
static int xfer_recv(struct nm_op *ops, struct nm_xfer *x, struct nm_route *r) {
  while (x->recv_i < x->send_i) {
    if (x->hdr_off < AMW_RESP_HEADER_SIZE) {
      ssize_t n = io_recv(r, x->hdr + x->hdr_off, AMW_RESP_HEADER_SIZE - x->hdr_off);
      if (n < 0) return (int)n;
      if (n == 0) return 0;
      x->hdr_off += (size_t)n;
      if (x->hdr_off < AMW_RESP_HEADER_SIZE) continue;
      struct amw_resp_header h;
      memcpy(&h, x->hdr, sizeof h);
      uint64_t id = le64toh(h.request_id);
      /* Match by id; the server answers in order, so this is the awaited op. */
      struct nm_op *op = &ops[x->recv_i];
      if (le32toh(h.magic) != AMW_MAGIC || h.version != AMW_VERSION || id != op->id ||
          h.opcode != op->opcode)
        return -EPROTO;
      uint32_t status = le32toh(h.status), len = le32toh(h.length);
      op->rflags = le16toh(h.flags);
      op->status = status;
      if (status != AMW_OK) {
        if (len != 0) return -EPROTO;
        if (!x->err) x->err = status_errno(status);
      } else {
        uint32_t want = op->opcode == AMW_OP_READ ? op->len
                        : op->opcode == AMW_OP_WRITE ? 0
                                                     : 8;
        if (len != want) return -EPROTO;
      }
      x->pay_len = len;
      x->pay_off = 0;
    }
    struct nm_op *op = &ops[x->recv_i];
    while (x->pay_off < x->pay_len) {
      uint8_t *dst = op->opcode == AMW_OP_READ ? op->rbuf : op->result;
      ssize_t n = io_recv(r, dst + x->pay_off, x->pay_len - x->pay_off);
      if (n < 0) return (int)n;
      if (n == 0) return 0;
      x->pay_off += (size_t)n;
    }
    x->inflight -= resp_bytes(op);
    x->recv_i++;
    if (x->nm->chunk_cb && op->opcode == AMW_OP_READ && op->status == AMW_OK) {
      int rc = x->nm->chunk_cb(x->nm->chunk_ctx, op->addr, op->rbuf, op->len);
      if (rc && !x->err) x->err = rc;
    }
    x->hdr_off = 0;
    x->pay_off = x->pay_len = 0;
  }
  return 0;
}

static int route_of(const struct netmem *nm, uint64_t addr) {
  size_t lo = 0, hi = nm->n;
  while (lo < hi) { /* last route with start <= addr */
    size_t mid = lo + (hi - lo) / 2;
    if (nm->r[mid].start <= addr) lo = mid + 1;
    else hi = mid;
  }
  if (lo == 0) return -1;
  const struct nm_route *r = &nm->r[lo - 1];
  return addr - r->start < r->size ? (int)(lo - 1) : -1;
}

/* Run ops (grouped by route, in route order). Returns the first error or 0. */
static int run_ops(struct netmem *nm, struct nm_op *ops, size_t nops) {
  size_t nx = 0;
  for (size_t i = 0; i < nops; i++)
    if (i == 0 || ops[i].route != ops[i - 1].route) nx++;
  struct nm_xfer xs_small[4];
  struct pollfd pfd_small[4];
  struct nm_xfer *xs = nx <= 4 ? xs_small : calloc(nx, sizeof *xs);
  struct pollfd *pfds = nx <= 4 ? pfd_small : calloc(nx, sizeof *pfds);
  int err = 0;
  if (!xs || !pfds) {
    err = -ENOMEM;
    goto out;
  }
  memset(xs, 0, nx * sizeof *xs);
  size_t k = 0;
  for (size_t i = 0; i < nops; i++) {
    if (i == 0 || ops[i].route != ops[i - 1].route) {
      xs[k].route = ops[i].route;
      xs[k].first = xs[k].send_i = xs[k].recv_i = i;
      xs[k].nm = nm;
      k++;
    }
    xs[k - 1].end = i + 1;
  }
  /* Connect every owner first: a call that cannot reach an owner sends nothing. */
  for (size_t j = 0; j < nx; j++) {
    int rc = route_connect(nm, &nm->r[xs[j].route]);
    if (rc) {
      err = rc;
      goto out;
    }
  }
  for (;;) {
    size_t np = 0;
    int pending = 0;
    for (size_t j = 0; j < nx; j++) {
      struct nm_xfer *x = &xs[j];
      if (x->dead || x->recv_i == x->end) continue;
      pfds[np].fd = nm->r[x->route].fd;
      pfds[np].events = POLLIN;
      if (can_send(ops, x)) pfds[np].events |= POLLOUT;
      pfds[np].revents = 0;
      pending |= io_pending(&nm->r[x->route]);
      np++;
    }
    if (!np) break;
    /* TLS may hold decrypted bytes poll cannot see: then only look, do not wait. */
    int n = poll(pfds, np, pending ? 0 : nm->timeout_ms);
    if (n < 0) {
      if (errno == EINTR) continue;
      err = -errno;
      break;
    }
    size_t p = 0;
    for (size_t j = 0; j < nx; j++) {
      struct nm_xfer *x = &xs[j];
      if (x->dead || x->recv_i == x->end) continue;
      struct pollfd *pf = &pfds[p++];
      struct nm_route *r = &nm->r[x->route];
      if (io_pending(r)) pf->revents |= POLLIN;
      int rc = 0;
      if (n == 0 && !pending) {
        rc = -ETIMEDOUT; /* no progress anywhere within the timeout */
      } else {
        if (pf->revents & (POLLOUT | POLLERR)) rc = xfer_send(ops, x, r);
        if (!rc && (pf->revents & (POLLIN | POLLHUP | POLLERR))) rc = xfer_recv(ops, x, r);
        /* Sending may have freed window room on a socket that stays writable. */
        if (!rc && (pf->revents & POLLIN)) rc = xfer_send(ops, x, r);
      }
      if (rc) {
        x->dead = 1;
        x->err = rc; /* the connection error wins over a status */
        route_disconnect(r);
      }
    }
  }
  for (size_t j = 0; j < nx && !err; j++) err = xs[j].err;
out:
  if (xs != xs_small) free(xs);
  if (pfds != pfd_small) free(pfds);
  return err;
}

/* Count the ops for [addr, addr+len) (split at route boundaries, chunked);
 * -EFAULT when some byte has no owner. */
static int count_ops(const struct netmem *nm, uint64_t addr, size_t len, size_t chunk,
                     size_t *count) {
  if (len && addr + (len - 1) < addr) return -EFAULT;
  uint64_t a = addr;
  size_t left = len;
  while (left) {
    int ri = route_of(nm, a);
    if (ri < 0) return -EFAULT;
    const struct nm_route *r = &nm->r[ri];
    uint64_t in_route = r->start + r->size - a; /* > 0 */
    uint64_t take = in_route < left ? in_route : left;
    *count += (take + chunk - 1) / chunk;
    a += take;
    left -= take;
  }
  return 0;
}

/* Append the ops for [addr, addr+len) at ops[*k] (room counted by count_ops). */
static void fill_ops(struct netmem *nm, uint8_t opcode, uint64_t addr, size_t len, size_t chunk,
                     uint8_t *rbuf, const uint8_t *wbuf, struct nm_op *ops, size_t *k) {
  size_t off = 0;
  uint64_t a = addr;
  size_t left = len;
  while (left) {
    int ri = route_of(nm, a);
    const struct nm_route *r = &nm->r[ri];
    uint64_t in_route = r->start + r->size - a;
    uint64_t take = in_route < left ? in_route : left;
    if (take > chunk) take = chunk;
    struct nm_op *op = &ops[(*k)++];
    op->route = (size_t)ri;
    op->opcode = opcode;
    op->addr = a;
    op->len = (uint32_t)take;
    op->id = nm->next_id++;
    if (opcode == AMW_OP_READ) {
      op->rbuf = rbuf + off;
    } else {
      op->wbuf = wbuf + off;
      op->plen = (uint32_t)take;
    }
    amw_encode_request(op->req, opcode, op->id, a, op->len);
    a += take;
    off += take;
    left -= take;
  }
}

/* run_ops needs the ops of one route to be adjacent: sort by route, then by id
 * (the order they were made in). */
static int cmp_op_route(const void *a, const void *b) {
  const struct nm_op *x = a, *y = b;
  if (x->route != y->route) return x->route < y->route ? -1 : 1;
  return x->id < y->id ? -1 : x->id > y->id;
}

static int rwv(struct netmem *nm, uint8_t opcode, const struct netmem_iov *iov, size_t n,
               size_t chunk) {
  if (!nm || (n && !iov)) return -EINVAL;
  if (!chunk || chunk > AMW_MAX_PAYLOAD) chunk = AMW_MAX_PAYLOAD;
  size_t count = 0;
  for (size_t i = 0; i < n; i++) {
    if (iov[i].len && !iov[i].buf) return -EINVAL;
    int rc = count_ops(nm, iov[i].addr, iov[i].len, chunk, &count);
    if (rc) return rc;
  }
  if (!count) return 0;
  struct nm_op *ops = calloc(count, sizeof *ops);
  if (!ops) return -ENOMEM;
  size_t k = 0;
  int sorted = 1;
  for (size_t i = 0; i < n; i++) {
    size_t before = k;
    fill_ops(nm, opcode, iov[i].addr, iov[i].len, chunk, (uint8_t *)iov[i].buf,
             (const uint8_t *)iov[i].buf, ops, &k);
    if (before > 0 && k > before && ops[before].route < ops[before - 1].route) sorted = 0;
  }
  if (!sorted) qsort(ops, k, sizeof *ops, cmp_op_route);
  int rc = run_ops(nm, ops, k);
  free(ops);
  return rc;
}

int netmem_readv(struct netmem *nm, const struct netmem_iov *iov, size_t n) {
  return rwv(nm, AMW_OP_READ, iov, n, 0);
}

int netmem_writev(struct netmem *nm, const struct netmem_iov *iov, size_t n) {
  return rwv(nm, AMW_OP_WRITE, iov, n, 0);
}

int netmem_read_stream(struct netmem *nm, uint64_t addr, void *buf, size_t len, size_t chunk,
                       netmem_chunk_cb cb, void *ctx) {
  if (!nm || !cb || (len && !buf)) return -EINVAL;
  struct netmem_iov one = {addr, buf, len};
  nm->chunk_cb = cb;
  nm->chunk_ctx = ctx;
  int rc = rwv(nm, AMW_OP_READ, &one, len ? 1 : 0, chunk);
  nm->chunk_cb = NULL;
  nm->chunk_ctx = NULL;
  return rc;
}

static int rw(struct netmem *nm, uint8_t opcode, uint64_t addr, uint8_t *rbuf, const uint8_t *wbuf,
              size_t len) {
  if (!nm || (len && !rbuf && !wbuf)) return -EINVAL;
  struct netmem_iov one = {addr, opcode == AMW_OP_READ ? (void *)rbuf : (void *)wbuf, len};
  return rwv(nm, opcode, &one, len ? 1 : 0, 0);
}

int netmem_read(struct netmem *nm, uint64_t addr, void *buf, size_t len) {
  return rw(nm, AMW_OP_READ, addr, buf, NULL, len);
}

int netmem_write(struct netmem *nm, uint64_t addr, const void *buf, size_t len) {
  return rw(nm, AMW_OP_WRITE, addr, NULL, buf, len);
}

static int atomic_op(struct netmem *nm, uint8_t opcode, uint64_t addr, uint64_t a, uint64_t b,
                     uint64_t *old, uint16_t *rflags) {
  if (!nm) return -EINVAL;
  if (addr & 7u) return -EINVAL;
  int ri = route_of(nm, addr);
  if (ri < 0 || route_of(nm, addr + 7) != ri) return -EFAULT;
  struct nm_op op;
  memset(&op, 0, sizeof op);
  op.route = (size_t)ri;
  op.opcode = opcode;
  op.addr = addr;
  op.len = 8;
  op.id = nm->next_id++;
  op.plen = opcode == AMW_OP_CAS64 ? 16u : 8u;
  amw_encode_request(op.req, opcode, op.id, addr, 8);
  uint64_t le = htole64(a);
  memcpy(op.req + AMW_REQ_HEADER_SIZE, &le, 8);
  le = htole64(b);
  if (opcode == AMW_OP_CAS64) memcpy(op.req + AMW_REQ_HEADER_SIZE + 8, &le, 8);
  int rc = run_ops(nm, &op, 1);
  if (rc) return rc;
  uint64_t v;
  memcpy(&v, op.result, 8);
  if (old) *old = le64toh(v);
  if (rflags) *rflags = op.rflags;
  return 0;
}

int netmem_cas64(struct netmem *nm, uint64_t addr, uint64_t expected, uint64_t desired,
                 uint64_t *old) {
  return atomic_op(nm, AMW_OP_CAS64, addr, expected, desired, old, NULL);
}

int netmem_fetch_add64(struct netmem *nm, uint64_t addr, uint64_t delta, uint64_t *old) {
  return atomic_op(nm, AMW_OP_FETCH_ADD64, addr, delta, 0, old, NULL);
}

int netmem_parse_route(const char *spec, struct netmem_route *out, char *hostbuf,
                       size_t hostbuf_len) {
  if (!spec || !out || !hostbuf) return -EINVAL;
  const char *colon = strchr(spec, ':');
  const char *eq = strchr(spec, '=');
  const char *at = strchr(spec, '@');
  if (!colon || !eq || !at || colon > eq || eq > at) return -EINVAL;
  uint64_t start, size;
  uint16_t port;
  char portbuf[32];
  size_t node_len = (size_t)(at - eq - 1);
  if (node_len == 0 || node_len >= sizeof out->node) return -EINVAL;
  char node[sizeof out->node];
  memcpy(node, eq + 1, node_len);
  node[node_len] = '\0';
  if (!amc_node_name_valid(node) || amc_parse_u64_n(spec, (size_t)(colon - spec), 0, &start) ||
      amc_parse_u64_n(colon + 1, (size_t)(eq - colon - 1), AMC_NUM_SUFFIX, &size) ||
      amc_split_host_port(at + 1, hostbuf, hostbuf_len, portbuf, sizeof portbuf) ||
      amc_parse_port(portbuf, &port))
    return -EINVAL;
  out->start = start;
  out->size = size;
  out->host = hostbuf;
  out->port = port;
  memcpy(out->node, node, sizeof node);
  return 0;
}

int netmem_owned(const struct netmem *nm, uint64_t addr, size_t len) {
  if (!nm) return -EINVAL;
  size_t count = 0;
  return count_ops(nm, addr, len, AMW_MAX_PAYLOAD, &count);
}

int netmem_owner_name(const struct netmem *nm, uint64_t addr, char *buf, size_t len) {
  if (!nm || !buf || !len) return -EINVAL;
  int ri = route_of(nm, addr);
  if (ri < 0) {
    snprintf(buf, len, "no owner");
    return -EFAULT;
  }
  const struct nm_route *r = &nm->r[ri];
  snprintf(buf, len, strchr(r->host, ':') ? "[%s]:%u" : "%s:%u", r->host, (unsigned)r->port);
  return 0;
}
