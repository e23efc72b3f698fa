/* devclient.c - see devclient.h. */
#include "devclient.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <unistd.h>

#include "../common/conn.h"
#include "../common/numparse.h"
#include "../include/amalgam_wire.h"

#ifndef AMALGAM_NO_TLS
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "../common/tls_peer.h"
#endif

/* Bytes per wire request (<= the 1 MiB payload limit): longer I/O is split and pipelined,
 * so the owner reads chunk n+1 while chunk n is on the wire. */
#define CHUNK (256u * 1024u)
/* At most this many chunks in flight on one connection. */
#define WINDOW 4
/* Idle connections kept per endpoint. */
#define POOL_MAX 32

struct dev_conn {
  int fd;
  void *ssl; /* SSL *, TLS endpoints only */
  uint64_t next_id;
  struct dev_conn *next;
};

struct dev_endpoint {
  char name[300]; /* HOST:PORT as given */
  char host[256];
  char port[16];
  int tls;
  char node[64]; /* the owner: over TLS its certificate must be node:<node>; "" unchecked */
  pthread_mutex_t mu;
  struct dev_conn *idle;
  int nidle;
  struct dev_endpoint *next;
};

static int g_timeout_ms = 5000;
static pthread_mutex_t g_eps_mu = PTHREAD_MUTEX_INITIALIZER;
static struct dev_endpoint *g_eps;
#ifndef AMALGAM_NO_TLS
static SSL_CTX *g_tls;
#endif

int devclient_status_errno(uint32_t status) {
  switch (status) {
  case AMW_OK: return 0;
  case AMW_E_NO_DEVICE: return -EACCES;
  case AMW_E_READ_ONLY: return -EROFS;
  case AMW_E_OUT_OF_RANGE:
  case AMW_E_BAD_REQUEST:
  case AMW_E_TOO_LARGE: return -EINVAL;
  default: return -EIO;
  }
}

int devclient_init(const char *cert, const char *key, const char *ca, int timeout_ms, char *err,
                   size_t errlen) {
  if (timeout_ms > 0) g_timeout_ms = timeout_ms;
  if (!cert && !key && !ca) return 0;
#ifdef AMALGAM_NO_TLS
  snprintf(err, errlen, "this build has no TLS (OpenSSL headers were missing at build time)");
  return -ENOTSUP;
#else
  if (!cert || !key || !ca) {
    snprintf(err, errlen, "TLS needs all three of --cert, --key and --ca");
    return -EINVAL;
  }
  /* The owner must chain to the cluster CA and name a node (the endpoint's: tls_open). */
  return amc_tls_client_ctx(&g_tls, cert, key, ca, AMC_PEER_NODE, err, errlen);
#endif
}

struct dev_endpoint *devclient_endpoint(const char *hostport, int tls, const char *node) {
  char host[256], port[16];
  if (!node) node = "";
  if (strlen(hostport) >= 300 ||
      amc_split_host_port(hostport, host, sizeof host, port, sizeof port) < 0 ||
      (*node && !amc_node_name_valid(node)) || (tls && !*node))
    return NULL;
  pthread_mutex_lock(&g_eps_mu);
  struct dev_endpoint *ep;
  for (ep = g_eps; ep; ep = ep->next)
    if (ep->tls == tls && strcmp(ep->name, hostport) == 0 && strcmp(ep->node, node) == 0) break;
  if (!ep && (ep = calloc(1, sizeof *ep))) {
    strcpy(ep->name, hostport);
    strcpy(ep->host, host);
    strcpy(ep->port, port);
    strcpy(ep->node, node);
    ep->tls = tls;
    pthread_mutex_init(&ep->mu, NULL);
    ep->next = g_eps;
    g_eps = ep;
  }
  pthread_mutex_unlock(&g_eps_mu);
  return ep;
}

const char *devclient_endpoint_name(const struct dev_endpoint *ep) { return ep->name; }

static void conn_free(struct dev_conn *c) {
  if (!c) return;
#ifndef AMALGAM_NO_TLS
  if (c->ssl) SSL_free(c->ssl);
#endif
  if (c->fd >= 0) close(c->fd);
  free(c);
}

static void log_failure(struct dev_endpoint *ep, const char *name, const char *what, int err) {
  fprintf(stderr, "remotedev-fuse: device %s on %s (%s): %s: %s\n", name, ep->name,
          ep->tls ? "tls" : "plain", what,
          err == -EAGAIN || err == -EWOULDBLOCK || err == -ETIMEDOUT ? "timed out"
                                                                      : strerror(-err));
}

/* The TLS session on c's connected socket: 0 or -errno (a failure is logged). */
static int tls_open(struct dev_endpoint *ep, struct dev_conn *c) {
#ifdef AMALGAM_NO_TLS
  (void)ep, (void)c;
  return -ENOTSUP;
#else
  if (!g_tls) return -ENOTSUP; /* no --cert/--key/--ca given */
  SSL *ssl;
  char why[256];
  int rc = amc_tls_handshake(g_tls, c->fd, NULL, ep->node, g_timeout_ms, &ssl, why, sizeof why);
  if (rc) {
    fprintf(stderr, "remotedev-fuse: TLS handshake with %s for node %s failed: %s\n", ep->name,
            ep->node, why);
    return -EPROTO;
  }
  c->ssl = ssl;
  return 0;
#endif
}

/*
 * A new connection (handshake done) or NULL with *err set: blocking from the
 * handshake on, every send and receive bounded by the timeout.
 */
static struct dev_conn *conn_open(struct dev_endpoint *ep, int *err) {
  struct dev_conn *c = calloc(1, sizeof *c);
  if (!c) {
    *err = -ENOMEM;
    return NULL;
  }
  c->fd = -1;
  c->next_id = 1;
  int rc = amc_dial(ep->host, ep->port, g_timeout_ms, &c->fd);
  if (!rc && ep->tls) rc = tls_open(ep, c);
  if (!rc) rc = amc_set_blocking_timeouts(c->fd, g_timeout_ms);
  if (rc) {
    *err = rc;
    conn_free(c);
    return NULL;
  }
  return c;
}

static struct dev_conn *conn_get(struct dev_endpoint *ep, int fresh, int *err) {
  if (!fresh) {
    pthread_mutex_lock(&ep->mu);
    struct dev_conn *c = ep->idle;
    if (c) {
      ep->idle = c->next;
      ep->nidle--;
    }
    pthread_mutex_unlock(&ep->mu);
    if (c) return c;
  }
  return conn_open(ep, err);
}

static void conn_put(struct dev_endpoint *ep, struct dev_conn *c) {
  pthread_mutex_lock(&ep->mu);
  if (ep->nidle < POOL_MAX) {
    c->next = ep->idle;
    ep->idle = c;
    ep->nidle++;
    c = NULL;
  }
  pthread_mutex_unlock(&ep->mu);
  conn_free(c);
}

/* Send all of buf: 0 or -errno. */
static int send_all(struct dev_conn *c, const void *buf, size_t len) {
  const uint8_t *p = buf;
  while (len > 0) {
    ssize_t n;
#ifndef AMALGAM_NO_TLS
    if (c->ssl) {
      ERR_clear_error();
      int r = SSL_write(c->ssl, p, len > (1u << 30) ? (1 << 30) : (int)len);
      if (r <= 0) return errno ? -errno : -EPROTO;
      n = r;
    } else
#endif
    {
      n = send(c->fd, p, len, MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EINTR) continue;
        return -errno;
      }
    }
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

/* Receive exactly len bytes: 0 or -errno (-ECONNRESET at end of stream). */
static int recv_all(struct dev_conn *c, void *buf, size_t len) {
  uint8_t *p = buf;
  while (len > 0) {
    ssize_t n;
#ifndef AMALGAM_NO_TLS
    if (c->ssl) {
      ERR_clear_error();
      errno = 0;
      int r = SSL_read(c->ssl, p, len > (1u << 30) ? (1 << 30) : (int)len);
      if (r <= 0) return errno ? -errno : -ECONNRESET;
      n = r;
    } else
#endif
    {
      n = recv(c->fd, p, len, 0);
      if (n < 0) {
        if (errno == EINTR) continue;
        return -errno;
      }
      if (n == 0) return -ECONNRESET;
    }
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

/* Send one device request: header, name field, data (DEVICE_WRITE). */
static int send_request(struct dev_conn *c, uint8_t op, uint64_t id, const char *name,
                        uint64_t off, uint32_t len, const void *data) {
  uint8_t head[AMW_REQ_HEADER_SIZE + AMW_DEV_NAME_SIZE];
  amw_encode_request(head, op, id, off, len);
  memset(head + AMW_REQ_HEADER_SIZE, 0, AMW_DEV_NAME_SIZE);
  memcpy(head + AMW_REQ_HEADER_SIZE, name, strlen(name));
  if (!c->ssl && data) {
    /* one syscall for header and data */
    struct iovec iov[2] = {{head, sizeof head}, {(void *)(uintptr_t)data, len}};
    size_t total = sizeof head + len, sent = 0;
    struct msghdr mh = {0};
    while (sent < total) {
      size_t skip = sent;
      struct iovec v[2];
      int nv = 0;
      for (int i = 0; i < 2; i++) {
        if (skip >= iov[i].iov_len) {
          skip -= iov[i].iov_len;
          continue;
        }
        v[nv].iov_base = (uint8_t *)iov[i].iov_base + skip;
        v[nv].iov_len = iov[i].iov_len - skip;
        skip = 0;
        nv++;
      }
      mh.msg_iov = v;
      mh.msg_iovlen = (size_t)nv;
      ssize_t n = sendmsg(c->fd, &mh, MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EINTR) continue;
        return -errno;
      }
      sent += (size_t)n;
    }
    return 0;
  }
  int rc = send_all(c, head, sizeof head);
  if (rc == 0 && data) rc = send_all(c, data, len);
  return rc;
}

/*
 * Receive one response for request id: the wire status in *status; a payload
 * of up to cap bytes into buf (its length in *got). -errno when the stream
 * broke or did not match.
 */
static int recv_response(struct dev_conn *c, uint64_t id, void *buf, size_t cap,
                         uint32_t *status, uint32_t *got) {
  uint8_t h[AMW_RESP_HEADER_SIZE];
  int rc = recv_all(c, h, sizeof h);
  if (rc < 0) return rc;
  struct amw_resp_header rh;
  memcpy(&rh, h, sizeof rh);
  uint32_t len = le32toh(rh.length);
  if (le32toh(rh.magic) != AMW_MAGIC || le64toh(rh.request_id) != id || len > cap)
    return -EPROTO;
  *status = le32toh(rh.status);
  *got = len;
  return len ? recv_all(c, buf, len) : 0;
}

/*
 * One device operation on one connection: READ/WRITE of any length (split
 * into pipelined chunks, WINDOW in flight), STAT (buf: struct amw_dev_stat),
 * FSYNC. Returns 0 with *status, or -errno when the connection failed (it
 * must then be closed).
 */
static int run_op(struct dev_conn *c, uint8_t op, const char *name, uint64_t off, uint8_t *buf,
                  size_t len, uint32_t *status) {
  *status = AMW_OK;
  if (op == AMW_OP_DEVICE_STAT || op == AMW_OP_DEVICE_FSYNC) {
    uint64_t id = c->next_id++;
    int rc = send_request(c, op, id, name, 0, 0, NULL);
    uint32_t got = 0;
    if (rc == 0) rc = recv_response(c, id, buf, op == AMW_OP_DEVICE_STAT ? 16 : 0, status, &got);
    if (rc == 0 && *status == AMW_OK && op == AMW_OP_DEVICE_STAT && got != 16) rc = -EPROTO;
    return rc;
  }
  size_t nchunks = len == 0 ? 0 : (len + CHUNK - 1) / CHUNK;
  size_t sent = 0, done = 0;
  uint64_t first_id = c->next_id;
  c->next_id += nchunks;
  while (done < nchunks) {
    while (sent < nchunks && sent - done < WINDOW) {
      size_t o = sent * CHUNK;
      uint32_t n = (uint32_t)(len - o < CHUNK ? len - o : CHUNK);
      int rc = send_request(c, op, first_id + sent, name, off + o, n,
                            op == AMW_OP_DEVICE_WRITE ? buf + o : NULL);
      if (rc < 0) return rc;
      sent++;
    }
    size_t o = done * CHUNK;
    uint32_t n = (uint32_t)(len - o < CHUNK ? len - o : CHUNK);
    uint32_t st, got = 0;
    int rc = recv_response(c, first_id + done, op == AMW_OP_DEVICE_READ ? buf + o : NULL,
                           op == AMW_OP_DEVICE_READ ? n : 0, &st, &got);
    if (rc < 0) return rc;
    if (st == AMW_OK && op == AMW_OP_DEVICE_READ && got != n) return -EPROTO;
    if (st != AMW_OK && *status == AMW_OK) *status = st; /* keep reading the rest: framing */
    done++;
  }
  return 0;
}

/*
 * Run op with a pooled connection; when that fails (an idle connection the
 * owner closed, say), once more on a fresh one. Device I/O at an offset is
 * idempotent, so the retry is safe. Returns 0 with *status or -errno.
 */
static int with_conn(struct dev_endpoint *ep, uint8_t op, const char *name, uint64_t off,
                     uint8_t *buf, size_t len, uint32_t *status) {
  int err = 0;
  for (int attempt = 0; attempt < 2; attempt++) {
    struct dev_conn *c = conn_get(ep, attempt > 0, &err);
    if (!c) break; /* cannot connect: no point retrying at once */
    err = run_op(c, op, name, off, buf, len, status);
    if (err == 0) {
      conn_put(ep, c);
      return 0;
    }
    conn_free(c);
  }
  const char *what = op == AMW_OP_DEVICE_READ    ? "read"
                     : op == AMW_OP_DEVICE_WRITE ? "write"
                     : op == AMW_OP_DEVICE_STAT  ? "stat"
                                                 : "fsync";
  log_failure(ep, name, what, err);
  return -EIO;
}

long devclient_read(struct dev_endpoint *ep, const char *name, uint64_t off, void *buf,
                    size_t len) {
  uint32_t st;
  int rc = with_conn(ep, AMW_OP_DEVICE_READ, name, off, buf, len, &st);
  if (rc < 0) return rc;
  return st == AMW_OK ? (long)len : devclient_status_errno(st);
}

long devclient_write(struct dev_endpoint *ep, const char *name, uint64_t off, const void *buf,
                     size_t len) {
  uint32_t st;
  int rc = with_conn(ep, AMW_OP_DEVICE_WRITE, name, off, (uint8_t *)(uintptr_t)buf, len, &st);
  if (rc < 0) return rc;
  return st == AMW_OK ? (long)len : devclient_status_errno(st);
}

int devclient_stat(struct dev_endpoint *ep, const char *name, uint64_t *size, uint32_t *flags) {
  struct amw_dev_stat ds;
  uint32_t st;
  int rc = with_conn(ep, AMW_OP_DEVICE_STAT, name, 0, (uint8_t *)&ds, 0, &st);
  if (rc < 0) return rc;
  if (st != AMW_OK) return devclient_status_errno(st);
  *size = le64toh(ds.size);
  *flags = le32toh(ds.flags);
  return 0;
}

int devclient_fsync(struct dev_endpoint *ep, const char *name) {
  uint32_t st;
  int rc = with_conn(ep, AMW_OP_DEVICE_FSYNC, name, 0, NULL, 0, &st);
  if (rc < 0) return rc;
  return devclient_status_errno(st);
}
