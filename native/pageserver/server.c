/* server.c - see server.h. */
#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <unistd.h>

#include "devices.h"

#ifndef AMALGAM_NO_TLS
#include <limits.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include "tls.h"
#include "../common/tls_peer.h"
#endif

#define RBUF_INITIAL (64u * 1024u)
#define RBUF_MAX (AMW_REQ_HEADER_SIZE + AMW_DEV_NAME_SIZE + AMW_MAX_PAYLOAD)
/* Stop reading requests while this much output is waiting for the client. */
#define WBUF_HIGH (4u * 1024u * 1024u)
#define WBUF_MAX (WBUF_HIGH + AMW_RESP_HEADER_SIZE + AMW_MAX_PAYLOAD)
#define READ_CHUNK (256u * 1024u)
/* Plaintext DEVICE_READs at least this long go out by sendfile (no copy through our buffers). */
#define SENDFILE_MIN (64u * 1024u)

enum conn_state {
  CONN_HANDSHAKE,  /* TLS only: handshake in progress, no request read yet */
  CONN_READING,    /* reading request headers and payloads */
  CONN_DISCARDING, /* skipping the payload of a refused WRITE, without buffering it */
  CONN_DRAINING,   /* framing lost or peer gone: flush queued responses, then close */
};

struct conn;

/*
 * How a connection moves bytes: plain recv/send or SSL_read/SSL_write, so the
 * request code is the same for both. read and write return the bytes moved
 * (> 0), 0 for end of stream (read only), -EAGAIN when they must be called
 * again after the event stored in rd_want / wr_want, or -errno.
 */
struct conn_io {
  ssize_t (*read)(struct conn *c, void *buf, size_t len);
  ssize_t (*write)(struct conn *c, const void *buf, size_t len);
  int (*pending)(const struct conn *c); /* input already buffered inside the layer */
  void (*release)(struct conn *c);      /* before close(fd): say goodbye, free state */
};

struct conn {
  struct server *srv;
  int fd;
  enum conn_state state;
  const struct conn_io *io;
  void *ssl;   /* SSL *, TLS connections only */
  int rd_want; /* the event a blocked read (or handshake) waits for: AE_READABLE... */
  int wr_want; /* ...and a blocked write: AE_WRITABLE, unless TLS says otherwise */
  int tls_failed; /* a fatal TLS error: no close_notify */
  long long accepted_ms;  /* monotonic: the handshake must end by accepted_ms + handshake_ms */
  long long active_ms;    /* monotonic: the last event on the connection (idle timeout) */
  char peer_cn[PEER_CN_MAX + 1];  /* TLS: the client's CN once the handshake is done */
  char peer_hash[PEER_HASH_MAX];  /* and its key's identity */
  int peer_admin;                 /* the admin credential: allowed by the chain alone */
  uint64_t discard_left; /* CONN_DISCARDING: payload bytes still to skip */
  uint8_t *rbuf;         /* received, unprocessed bytes in [rpos, rlen) */
  size_t rcap, rpos, rlen;
  uint8_t *wbuf; /* responses not yet sent in [wpos, wlen) */
  size_t wcap, wpos, wlen;
  /*
   * A DEVICE_READ answered by sendfile: its header is the last thing in wbuf
   * (ending at seg_mark == wlen) and seg_left bytes of seg_fd (a dup, so a
   * SIGHUP reload cannot close it) at seg_off follow it. While it is pending
   * no other request is processed, which keeps the responses in order.
   */
  int seg_fd; /* -1: none */
  off_t seg_off;
  size_t seg_left, seg_mark;
  int peer_closed;
};

/* 1 when the connection's client may be served under the current --peers. */
static int peer_allowed(const struct server *srv, const struct conn *c) {
  return !srv->peers || c->peer_admin || peertable_allows(srv->peers, c->peer_cn, c->peer_hash);
}

/* ---- plaintext I/O ---- */

static ssize_t plain_read(struct conn *c, void *buf, size_t len) {
  for (;;) {
    ssize_t n = recv(c->fd, buf, len, 0);
    if (n >= 0) return n;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return -EAGAIN;
    return -errno;
  }
}

static ssize_t plain_write(struct conn *c, const void *buf, size_t len) {
  for (;;) {
    ssize_t n = send(c->fd, buf, len, MSG_NOSIGNAL);
    if (n >= 0) return n;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return -EAGAIN;
    return -errno;
  }
}

static int plain_pending(const struct conn *c) {
  (void)c;
  return 0;
}

static void plain_release(struct conn *c) { (void)c; }

static const struct conn_io plain_io = {plain_read, plain_write, plain_pending, plain_release};

/* ---- TLS I/O (OpenSSL) ---- */
#ifndef AMALGAM_NO_TLS

/* Map a failed SSL_* call to -EAGAIN (setting *want), 0 (clean end), or -errno. */
static ssize_t tls_status(struct conn *c, int ret, int *want) {
  int e = SSL_get_error(c->ssl, ret);
  switch (e) {
  case SSL_ERROR_WANT_READ: *want = AE_READABLE; return -EAGAIN;
  case SSL_ERROR_WANT_WRITE: *want = AE_WRITABLE; return -EAGAIN;
  case SSL_ERROR_ZERO_RETURN: return 0; /* close_notify */
  case SSL_ERROR_SYSCALL: {
    int err = errno;
    c->tls_failed = 1;
    if (ERR_peek_error() != 0) return -EPROTO;
    return err ? -err : 0; /* 0: the peer closed without close_notify */
  }
  default: c->tls_failed = 1; return -EPROTO;
  }
}

static ssize_t tls_read(struct conn *c, void *buf, size_t len) {
  ERR_clear_error();
  errno = 0;
  int n = SSL_read(c->ssl, buf, len > INT_MAX ? INT_MAX : (int)len);
  if (n > 0) {
    c->rd_want = AE_READABLE;
    return n;
  }
  return tls_status(c, n, &c->rd_want);
}

static ssize_t tls_write(struct conn *c, const void *buf, size_t len) {
  ERR_clear_error();
  errno = 0;
  int n = SSL_write(c->ssl, buf, len > INT_MAX ? INT_MAX : (int)len);
  if (n > 0) {
    c->wr_want = AE_WRITABLE;
    return n;
  }
  ssize_t r = tls_status(c, n, &c->wr_want);
  return r == 0 ? -EPIPE : r;
}

static int tls_pending(const struct conn *c) { return SSL_has_pending(c->ssl); }

static void tls_release(struct conn *c) {
  if (!c->ssl) return;
  if (!c->tls_failed && c->state != CONN_HANDSHAKE) {
    ERR_clear_error();
    (void)SSL_shutdown(c->ssl); /* best effort close_notify; we do not wait for the peer's */
  }
  ERR_clear_error();
  SSL_free(c->ssl);
  c->ssl = NULL;
}

static const struct conn_io tls_io = {tls_read, tls_write, tls_pending, tls_release};

/* One step of the server handshake: 0 done, -EAGAIN (rd_want set), or -errno. */
static int tls_handshake(struct conn *c) {
  ERR_clear_error();
  errno = 0;
  int r = SSL_do_handshake(c->ssl);
  if (r == 1) {
    c->rd_want = AE_READABLE;
    return 0;
  }
  ssize_t st = tls_status(c, r, &c->rd_want);
  if (st == -EAGAIN) return -EAGAIN;
  c->tls_failed = 1;
  if (st == 0) return -ECONNRESET; /* the peer went away mid-handshake (a scan, a timeout) */
  long vr = SSL_get_verify_result(c->ssl);
  char detail[256];
  amc_tls_last_error(detail, sizeof detail);
  fprintf(stderr, "pageserver: TLS handshake refused: %s%s%s\n",
          vr != X509_V_OK ? X509_verify_cert_error_string(vr) : detail,
          vr != X509_V_OK ? "; " : "", vr != X509_V_OK ? detail : "");
  return st < 0 ? (int)st : -ECONNRESET;
}
/*
 * The handshake's certificate check: the chain and the member subject
 * (amc_tls_verify_member), then, at the leaf, the --peers list: a node whose
 * (CN, key) is not listed fails the handshake itself (the client gets an
 * alert; nothing is read from it).
 */
static int verify_listed_peer(int ok, X509_STORE_CTX *store) {
  ok = amc_tls_verify_member(ok, store);
  if (!ok || X509_STORE_CTX_get_error_depth(store) != 0) return ok;
  SSL *ssl = X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx());
  struct conn *c = ssl ? SSL_get_app_data(ssl) : NULL;
  X509 *leaf = X509_STORE_CTX_get_current_cert(store);
  if (!c || !c->srv->peers || !leaf) return ok;
  char cn[PEER_CN_MAX + 1] = "", hash[PEER_HASH_MAX] = "";
  X509_NAME *subject = X509_get_subject_name(leaf);
  if (subject) X509_NAME_get_text_by_NID(subject, NID_commonName, cn, sizeof cn);
  if (strcmp(cn, "admin") == 0) return 1; /* the member rule checked its O */
  if (amc_tls_key_hash(leaf, hash, sizeof hash) == 0 && peertable_allows(c->srv->peers, cn, hash))
    return 1;
  fprintf(stderr,
          "pageserver: TLS client refused: %s with key %s is not an allowed peer in --peers %s "
          "(removed, or another key)\n",
          cn, hash, c->srv->peers_file);
  X509_STORE_CTX_set_error(store, X509_V_ERR_APPLICATION_VERIFICATION);
  return 0;
}

/* After the handshake: who is it, and is it listed? 0, or -EACCES (logged). */
static int tls_check_peer(struct server *srv, struct conn *c) {
  char err[128];
  if (tls_peer_identity(c->ssl, c->peer_cn, sizeof c->peer_cn, c->peer_hash, sizeof c->peer_hash,
                        &c->peer_admin, err, sizeof err) < 0) {
    fprintf(stderr, "pageserver: TLS client refused: %s\n", err);
    return -EACCES;
  }
  if (peer_allowed(srv, c)) return 0;
  fprintf(stderr,
          "pageserver: TLS client refused: %s with key %s is not an allowed peer in --peers %s "
          "(removed, or another key)\n",
          c->peer_cn, c->peer_hash, srv->peers_file);
  return -EACCES;
}
#endif /* AMALGAM_NO_TLS */

static void conn_close(struct server *srv, struct conn *c) {
  ae_del(srv->loop, c->fd, AE_READABLE | AE_WRITABLE);
  srv->conns[c->fd] = NULL;
  if (c->seg_fd >= 0) close(c->seg_fd);
  c->io->release(c);
  close(c->fd);
  free(c->rbuf);
  free(c->wbuf);
  free(c);
  srv->range->stats[AMW_STAT_CONN_OPEN]--;
}

/* Make room for need more bytes of output; need is bounded by the caller. */
static int wbuf_reserve(struct conn *c, size_t need) {
  if (c->wpos > 0 && c->wpos == c->wlen) c->wpos = c->wlen = 0;
  if (c->wcap - c->wlen >= need) return 0;
  if (c->wpos > 0) {
    memmove(c->wbuf, c->wbuf + c->wpos, c->wlen - c->wpos);
    c->wlen -= c->wpos;
    c->wpos = 0;
    if (c->wcap - c->wlen >= need) return 0;
  }
  size_t want = c->wlen + need;
  if (want > WBUF_MAX) return -ENOBUFS;
  size_t cap = c->wcap ? c->wcap : RBUF_INITIAL;
  while (cap < want) cap *= 2;
  if (cap > WBUF_MAX) cap = WBUF_MAX;
  uint8_t *p = realloc(c->wbuf, cap);
  if (!p) return -ENOMEM;
  c->wbuf = p;
  c->wcap = cap;
  return 0;
}

static int queue_error(struct conn *c, const struct amw_req *req, uint32_t status) {
  int rc = wbuf_reserve(c, AMW_RESP_HEADER_SIZE);
  if (rc < 0) return rc;
  amw_encode_response(c->wbuf + c->wlen, req->opcode, 0, req->request_id, status, 0);
  c->wlen += AMW_RESP_HEADER_SIZE;
  return 0;
}

/*
 * Handle the requests buffered in rbuf, in order, until more input is needed,
 * too much output is queued, or the framing is lost. Returns 0 or -errno.
 */
static int conn_process(struct server *srv, struct conn *c) {
  while (c->state != CONN_DRAINING && c->seg_fd < 0 && c->wlen - c->wpos < WBUF_HIGH) {
    size_t avail = c->rlen - c->rpos;
    if (c->state == CONN_DISCARDING) {
      size_t n = avail < c->discard_left ? avail : (size_t)c->discard_left;
      c->rpos += n;
      c->discard_left -= n;
      if (c->discard_left > 0) break;
      c->state = CONN_READING;
      continue;
    }
    struct amw_req req;
    if (amw_decode_request(c->rbuf + c->rpos, avail, &req) < 0) break;
    if (req.status != AMW_OK) {
      memrange_count_refused(srv->range, &req);
      int rc = queue_error(c, &req, req.status);
      if (rc < 0) return rc;
      c->rpos += AMW_REQ_HEADER_SIZE;
      if (req.fatal) {
        c->state = CONN_DRAINING;
        break;
      }
      if (req.payload_len > 0) {
        c->state = CONN_DISCARDING;
        c->discard_left = req.payload_len;
      }
      continue;
    }
    size_t total = AMW_REQ_HEADER_SIZE + (size_t)req.payload_len; /* <= RBUF_MAX */
    if (avail < total) {
      if (c->rcap < total) { /* the decoder bounded total: safe to allocate */
        if (c->rpos > 0) {
          memmove(c->rbuf, c->rbuf + c->rpos, avail);
          c->rlen = avail;
          c->rpos = 0;
        }
        uint8_t *p = realloc(c->rbuf, total);
        if (!p) return -ENOMEM;
        c->rbuf = p;
        c->rcap = total;
      }
      break;
    }
    if (req.opcode == AMW_OP_DEVICE_READ && c->io == &plain_io && req.length >= SENDFILE_MIN) {
      const uint8_t *name = c->rbuf + c->rpos + AMW_REQ_HEADER_SIZE;
      int fd = devices_read_fd(srv->devices, srv->range, &req, name);
      int dfd = fd >= 0 ? fcntl(fd, F_DUPFD_CLOEXEC, 0) : -1;
      if (dfd >= 0) {
        int rc = wbuf_reserve(c, AMW_RESP_HEADER_SIZE);
        if (rc < 0) {
          close(dfd);
          return rc;
        }
        amw_encode_response(c->wbuf + c->wlen, req.opcode, 0, req.request_id, AMW_OK, req.length);
        c->wlen += AMW_RESP_HEADER_SIZE;
        c->seg_fd = dfd;
        c->seg_off = (off_t)req.addr;
        c->seg_left = req.length;
        c->seg_mark = c->wlen;
        c->rpos += total;
        break; /* conn_flush sends the data; then processing resumes */
      }
    }
    size_t out_max = req.opcode == AMW_OP_READ || req.opcode == AMW_OP_DEVICE_READ
                         ? req.length
                         : AMW_STAT_COUNT * 8; /* >= sizeof(struct amw_dev_stat) */
    int rc = wbuf_reserve(c, AMW_RESP_HEADER_SIZE + out_max);
    if (rc < 0) return rc;
    uint32_t status, out_len;
    uint16_t flags = 0;
    const uint8_t *payload = c->rbuf + c->rpos + AMW_REQ_HEADER_SIZE;
    uint8_t *out = c->wbuf + c->wlen + AMW_RESP_HEADER_SIZE;
    if (amw_is_device_op(req.opcode))
      devices_execute(srv->devices, srv->bounce, srv->range, &req, payload, out, &status,
                      &out_len);
    else
      memrange_execute(srv->range, &req, payload, out, &status, &flags, &out_len);
    amw_encode_response(c->wbuf + c->wlen, req.opcode, flags, req.request_id, status, out_len);
    c->wlen += AMW_RESP_HEADER_SIZE + out_len;
    c->rpos += total;
  }
  if (c->rpos == c->rlen) c->rpos = c->rlen = 0;
  return 0;
}

/* Send queued output; returns 0 or -errno (-EPIPE etc. close the connection). */
static int conn_flush(struct conn *c) {
  for (;;) {
    size_t end = c->seg_fd >= 0 ? c->seg_mark : c->wlen;
    while (c->wpos < end) {
      ssize_t n = c->io->write(c, c->wbuf + c->wpos, end - c->wpos);
      if (n == -EAGAIN) return 0;
      if (n < 0) return (int)n;
      c->wpos += (size_t)n;
    }
    if (c->seg_fd < 0) break;
    while (c->seg_left > 0) {
      ssize_t n = sendfile(c->fd, c->seg_fd, &c->seg_off, c->seg_left);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 0;
      if (n <= 0) {
        /* the header promised these bytes: the stream cannot go on */
        fprintf(stderr, "pageserver: device read by sendfile failed: %s\n",
                n == 0 ? "the file shrank" : strerror(errno));
        return n == 0 ? -EIO : -errno;
      }
      c->seg_left -= (size_t)n;
    }
    close(c->seg_fd);
    c->seg_fd = -1;
  }
  c->wpos = c->wlen = 0;
  return 0;
}

/*
 * Receive what is available into rbuf: one read per call (at most READ_CHUNK),
 * more only while the I/O layer holds input it already took off the socket.
 */
static int conn_fill(struct conn *c) {
  if (c->rpos > 0 && c->rpos == c->rlen) c->rpos = c->rlen = 0;
  if (c->rcap - c->rlen < 4096 && c->rpos > 0) {
    memmove(c->rbuf, c->rbuf + c->rpos, c->rlen - c->rpos);
    c->rlen -= c->rpos;
    c->rpos = 0;
  }
  size_t got = 0;
  do {
    size_t room = c->rcap - c->rlen;
    if (room == 0) return 0; /* a full request is buffered; conn_process will take it */
    if (room > READ_CHUNK - got) room = READ_CHUNK - got;
    ssize_t n = c->io->read(c, c->rbuf + c->rlen, room);
    if (n == -EAGAIN) return 0;
    if (n < 0) return (int)n;
    if (n == 0) {
      c->peer_closed = 1;
      return 0;
    }
    c->rlen += (size_t)n;
    got += (size_t)n;
  } while (got < READ_CHUNK && c->io->pending(c));
  return 0;
}

static ae_file_proc conn_event;

/* Watch for input only while we accept more requests, for output only while some waits. */
static int conn_update_events(struct server *srv, struct conn *c) {
  int want = AE_NONE;
  int pending = c->wlen > c->wpos || c->seg_fd >= 0;
  if (c->state == CONN_HANDSHAKE) {
    want = c->rd_want;
  } else {
    if (pending) want |= c->wr_want;
    if (c->state != CONN_DRAINING && !c->peer_closed && c->seg_fd < 0 &&
        c->wlen - c->wpos < WBUF_HIGH)
      want |= c->rd_want;
  }
  int have = ae_mask(srv->loop, c->fd);
  int rc = 0;
  if (have & ~want) rc = ae_del(srv->loop, c->fd, have & ~want);
  if (rc == 0 && (want & ~have)) rc = ae_add(srv->loop, c->fd, want & ~have, conn_event, c);
  return rc;
}

static void conn_event(ae_loop *loop, int fd, void *data, int mask) {
  (void)loop;
  (void)fd;
  struct conn *c = data;
  struct server *srv = c->srv;
  int rc = 0;
  c->active_ms = ae_now_ms();
#ifndef AMALGAM_NO_TLS
  if (c->state == CONN_HANDSHAKE) {
    rc = tls_handshake(c);
    if (rc == -EAGAIN) {
      if (conn_update_events(srv, c) < 0) conn_close(srv, c);
      return;
    }
    if (rc == 0) rc = tls_check_peer(srv, c);
    if (rc < 0) {
      c->tls_failed = 1; /* refused: no close_notify, nothing served */
      conn_close(srv, c);
      return;
    }
    c->state = CONN_READING;
    mask |= c->rd_want; /* requests may have arrived with the handshake's last flight */
  }
#endif
  if ((mask & c->rd_want) && c->state != CONN_DRAINING) rc = conn_fill(c);
  if (rc == 0) rc = conn_process(srv, c);
  if (rc == 0) rc = conn_flush(c);
  /*
   * Output drained below the high-water mark: take the requests already
   * buffered, for as long as they make progress. A client that has sent all
   * its requests signals no more input, so stopping after one round here
   * would leave the rest unanswered (a pipelined 40 MiB read stalled so).
   * When the socket is full, the writable event brings us back here.
   */
  while (rc == 0 && c->state != CONN_DRAINING && c->rlen > c->rpos &&
         c->wlen - c->wpos < WBUF_HIGH) {
    size_t waiting = c->rlen - c->rpos;
    rc = conn_process(srv, c);
    if (rc == 0) rc = conn_flush(c);
    if (c->rlen - c->rpos >= waiting) break; /* only a partial request is left: wait for input */
  }
  /*
   * TLS may hold decrypted input the socket will not signal again: take it
   * while we accept requests (when output is too high, the writable event
   * that drains it comes back here).
   */
  while (rc == 0 && c->io->pending(c) && c->state != CONN_DRAINING && !c->peer_closed &&
         c->wlen - c->wpos < WBUF_HIGH) {
    size_t had = c->rlen - c->rpos;
    rc = conn_fill(c);
    int progressed = c->rlen - c->rpos != had || c->peer_closed;
    if (rc == 0) rc = conn_process(srv, c);
    if (rc == 0) rc = conn_flush(c);
    if (!progressed) break; /* cannot happen (see conn_fill), but never spin */
  }
  int done = c->wpos == c->wlen && c->seg_fd < 0 &&
             (c->state == CONN_DRAINING || c->peer_closed);
  if (rc < 0 || done) {
    conn_close(srv, c);
    return;
  }
  if (conn_update_events(srv, c) < 0) conn_close(srv, c);
}

/* One line per second at most while new connections are closed at the cap. */
static void note_refused(struct server *srv, long long now) {
  srv->refused++;
  if (srv->refused_since != 0 && now - srv->refused_since < 1000) return;
  fprintf(stderr,
          "pageserver: connection cap reached (%d open, --max-connections %d): closed %lu new "
          "connection(s)\n",
          (int)srv->range->stats[AMW_STAT_CONN_OPEN], srv->limits.max_connections, srv->refused);
  srv->refused = 0;
  srv->refused_since = now;
}

static void accept_event(ae_loop *loop, int fd, void *data, int mask) {
  (void)loop;
  (void)mask;
  struct server *srv = data;
  for (int i = 0; i < 64; i++) { /* a bounded batch per wake-up */
    int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (cfd < 0) return; /* EAGAIN, or a transient error (EMFILE...): retry on next wake-up */
    long long now = ae_now_ms();
    if (cfd >= srv->setsize ||
        srv->range->stats[AMW_STAT_CONN_OPEN] >= (uint64_t)srv->limits.max_connections) {
      close(cfd);
      note_refused(srv, now);
      continue;
    }
    int one = 1;
    setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct conn *c = calloc(1, sizeof *c);
    uint8_t *rbuf = malloc(RBUF_INITIAL);
    if (!c || !rbuf) {
      free(c);
      free(rbuf);
      close(cfd);
      continue;
    }
    c->srv = srv;
    c->fd = cfd;
    c->accepted_ms = c->active_ms = now;
    c->seg_fd = -1;
    c->state = CONN_READING;
    c->io = &plain_io;
    c->rd_want = AE_READABLE;
    c->wr_want = AE_WRITABLE;
    c->rbuf = rbuf;
    c->rcap = RBUF_INITIAL;
#ifndef AMALGAM_NO_TLS
    if (srv->tls) {
      SSL *ssl = SSL_new(srv->tls);
      if (!ssl || SSL_set_fd(ssl, cfd) != 1) {
        char detail[256];
        amc_tls_last_error(detail, sizeof detail);
        fprintf(stderr, "pageserver: cannot set up TLS for a connection: %s\n", detail);
        SSL_free(ssl); /* NULL is fine */
        free(rbuf);
        free(c);
        close(cfd);
        continue;
      }
      SSL_set_accept_state(ssl);
      SSL_set_app_data(ssl, c);
      SSL_set_verify(ssl, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, verify_listed_peer);
      c->ssl = ssl;
      c->io = &tls_io;
      c->state = CONN_HANDSHAKE;
    }
#endif
    if (ae_add(srv->loop, cfd, AE_READABLE, conn_event, c) < 0) {
      c->io->release(c);
      free(rbuf);
      free(c);
      close(cfd);
      continue;
    }
    srv->conns[cfd] = c;
    srv->range->stats[AMW_STAT_CONN_ACCEPTED]++;
    srv->range->stats[AMW_STAT_CONN_OPEN]++;
  }
}

/*
 * SIGHUP: load the --peers file again; connections of clients no longer
 * listed (a removed node, a replaced key) are closed at once.
 */
static void reload_peers(struct server *srv) {
  struct peertable *t;
  char err[512];
  if (peertable_load(srv->peers_file, &t, err, sizeof err) < 0) {
    fprintf(stderr, "pageserver: SIGHUP: keeping the previous %zu peers: %s\n", srv->peers->n,
            err);
    return;
  }
  peertable_free(srv->peers);
  srv->peers = t;
  int dropped = 0;
  for (int fd = 0; fd < srv->setsize; fd++) {
    struct conn *c = srv->conns[fd];
    if (!c || c->state == CONN_HANDSHAKE || peer_allowed(srv, c)) continue;
    fprintf(stderr, "pageserver: SIGHUP: %s (key %s) is no longer an allowed peer: connection closed\n",
            c->peer_cn, c->peer_hash);
    c->tls_failed = 1; /* no close_notify: nothing more is said to it */
    conn_close(srv, c);
    dropped++;
  }
  fprintf(stderr, "pageserver: SIGHUP: now allowing %zu peers from %s (%d connection(s) closed)\n",
          t->n, srv->peers_file, dropped);
}

/* SIGHUP: load the --devices file again and swap the table in whole (or keep the old one). */
static void reload_devices(struct server *srv) {
  if (!srv->devices_file) return;
  struct devtable *t;
  char err[512];
  int rc = devtable_load(srv->devices_file, &t, err, sizeof err);
  if (rc < 0) {
    fprintf(stderr, "pageserver: SIGHUP: keeping the previous %zu devices: %s\n",
            srv->devices ? srv->devices->n : (size_t)0, err);
    return;
  }
  /* One thread: no request is running, so the old table can go at once. */
  devtable_free(srv->devices);
  srv->devices = t;
  fprintf(stderr, "pageserver: SIGHUP: now serving %zu devices from %s\n", t->n,
          srv->devices_file);
}

static void signal_event(ae_loop *loop, int fd, void *data, int mask) {
  (void)mask;
  struct server *srv = data;
  struct signalfd_siginfo si;
  while (read(fd, &si, sizeof si) == (ssize_t)sizeof si) {
    if (si.ssi_signo == SIGHUP) {
      if (!srv->devices_file && !srv->peers_file)
        fprintf(stderr, "pageserver: SIGHUP: no --devices or --peers file, nothing to reload\n");
      reload_devices(srv);
      if (srv->peers_file) reload_peers(srv);
    } else {
      ae_stop(loop);
    }
  }
}

int server_set_devices(struct server *srv, const char *file, char *err, size_t errlen) {
  srv->bounce = devices_bounce_alloc();
  if (!srv->bounce) {
    snprintf(err, errlen, "out of memory");
    return -ENOMEM;
  }
  struct devtable *t;
  int rc = devtable_load(file, &t, err, errlen);
  if (rc < 0) return rc;
  srv->devices = t;
  srv->devices_file = file;
  return 0;
}

int server_set_peers(struct server *srv, const char *file, char *err, size_t errlen) {
  if (!srv->tls) {
    snprintf(err, errlen, "--peers needs mutual TLS (a plaintext client has no identity)");
    return -EINVAL;
  }
  struct peertable *t;
  int rc = peertable_load(file, &t, err, errlen);
  if (rc < 0) return rc;
  srv->peers = t;
  srv->peers_file = file;
  return 0;
}

/*
 * Every tick: close handshakes that took too long and connections idle too
 * long (a client that connects and says nothing holds a slot no longer).
 */
static void sweep_event(ae_loop *loop, void *data, long long now) {
  (void)loop;
  struct server *srv = data;
  const struct server_limits *l = &srv->limits;
  int slow = 0, idle = 0;
  for (int fd = 0; fd < srv->setsize; fd++) {
    struct conn *c = srv->conns[fd];
    if (!c) continue;
    if (c->state == CONN_HANDSHAKE && now - c->accepted_ms >= l->handshake_ms) {
      c->tls_failed = 1;
      conn_close(srv, c);
      slow++;
    } else if (l->idle_ms > 0 && now - c->active_ms >= l->idle_ms) {
      conn_close(srv, c);
      idle++;
    }
  }
  if (slow || idle)
    fprintf(stderr,
            "pageserver: closed %d connection(s) whose handshake took over %d ms and %d idle "
            "for %d ms\n",
            slow, l->handshake_ms, idle, l->idle_ms);
}

static int tick_period(const struct server_limits *l) {
  int p = l->handshake_ms;
  if (l->idle_ms > 0 && l->idle_ms < p) p = l->idle_ms;
  p /= 4;
  return p < 50 ? 50 : p > 1000 ? 1000 : p;
}

void server_set_limits(struct server *srv, const struct server_limits *limits) {
  srv->limits = *limits;
  /* each connection is one descriptor; keep some for the listener, devices, logs */
  int room = srv->setsize - 64;
  if (srv->limits.max_connections > room) {
    fprintf(stderr,
            "pageserver: --max-connections %d is more than the descriptors allow "
            "(RLIMIT_NOFILE %d): using %d\n",
            srv->limits.max_connections, srv->setsize, room > 1 ? room : 1);
    srv->limits.max_connections = room > 1 ? room : 1;
  }
  ae_set_tick(srv->loop, tick_period(&srv->limits), sweep_event, srv);
}

int server_init(struct server *srv, int listen_fd, struct memrange *range,
                struct ssl_ctx_st *tls) {
  memset(srv, 0, sizeof *srv);
#ifdef AMALGAM_NO_TLS
  if (tls) return -ENOTSUP;
#endif
  srv->tls = tls;
  srv->listen_fd = listen_fd;
  srv->signal_fd = -1;
  srv->range = range;
  struct rlimit rl;
  srv->setsize = 1024;
  /* As many descriptors as allowed: the connection cap is what bounds them. */
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    (void)setrlimit(RLIMIT_NOFILE, &rl);
    (void)getrlimit(RLIMIT_NOFILE, &rl);
  }
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
    srv->setsize = rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > 65536 ? 65536 : (int)rl.rlim_cur;
  srv->conns = calloc((size_t)srv->setsize, sizeof *srv->conns);
  if (!srv->conns) return -ENOMEM;
  int rc = ae_create(&srv->loop, srv->setsize);
  if (rc < 0) goto fail;
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  if (sigprocmask(SIG_BLOCK, &set, NULL) < 0) {
    rc = -errno;
    goto fail;
  }
  srv->signal_fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
  if (srv->signal_fd < 0) {
    rc = -errno;
    goto fail;
  }
  rc = ae_add(srv->loop, srv->signal_fd, AE_READABLE, signal_event, srv);
  if (rc < 0) goto fail;
  rc = ae_add(srv->loop, listen_fd, AE_READABLE, accept_event, srv);
  if (rc < 0) goto fail;
  /* the defaults, silently within RLIMIT_NOFILE; main.c applies the flags */
  srv->limits = (struct server_limits){SERVER_DEFAULT_MAX_CONNECTIONS,
                                       SERVER_DEFAULT_HANDSHAKE_MS, SERVER_DEFAULT_IDLE_MS};
  if (srv->limits.max_connections > srv->setsize - 64)
    srv->limits.max_connections = srv->setsize > 65 ? srv->setsize - 64 : 1;
  ae_set_tick(srv->loop, tick_period(&srv->limits), sweep_event, srv);
  return 0;
fail:
  server_close(srv);
  return rc;
}

int server_run(struct server *srv) { return ae_run(srv->loop); }

void server_close(struct server *srv) {
  if (srv->conns) {
    for (int fd = 0; fd < srv->setsize; fd++)
      if (srv->conns[fd]) conn_close(srv, srv->conns[fd]);
  }
  free(srv->conns);
  srv->conns = NULL;
  if (srv->signal_fd >= 0) close(srv->signal_fd);
  srv->signal_fd = -1;
  ae_destroy(srv->loop);
  srv->loop = NULL;
  devtable_free(srv->devices);
  srv->devices = NULL;
  free(srv->bounce);
  srv->bounce = NULL;
  peertable_free(srv->peers);
  srv->peers = NULL;
}
