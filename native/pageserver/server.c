/* server.c - see server.h. */
#include "server.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>

#define RBUF_INITIAL (64u * 1024u)
#define RBUF_MAX (AMW_REQ_HEADER_SIZE + AMW_MAX_PAYLOAD)
/* Stop reading requests while this much output is waiting for the client. */
#define WBUF_HIGH (4u * 1024u * 1024u)
#define WBUF_MAX (WBUF_HIGH + AMW_RESP_HEADER_SIZE + AMW_MAX_PAYLOAD)
#define READ_CHUNK (256u * 1024u)

enum conn_state {
  CONN_READING,    /* reading request headers and payloads */
  CONN_DISCARDING, /* skipping the payload of a refused WRITE, without buffering it */
  CONN_DRAINING,   /* framing lost or peer gone: flush queued responses, then close */
};

struct conn {
  struct server *srv;
  int fd;
  enum conn_state state;
  uint64_t discard_left; /* CONN_DISCARDING: payload bytes still to skip */
  uint8_t *rbuf;         /* received, unprocessed bytes in [rpos, rlen) */
  size_t rcap, rpos, rlen;
  uint8_t *wbuf; /* responses not yet sent in [wpos, wlen) */
  size_t wcap, wpos, wlen;
  int peer_closed;
};

static void conn_close(struct server *srv, struct conn *c) {
  ae_del(srv->loop, c->fd, AE_READABLE | AE_WRITABLE);
  srv->conns[c->fd] = NULL;
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
  while (c->state != CONN_DRAINING && c->wlen - c->wpos < WBUF_HIGH) {
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
    size_t out_max = req.opcode == AMW_OP_READ ? req.length : AMW_STAT_COUNT * 8;
    int rc = wbuf_reserve(c, AMW_RESP_HEADER_SIZE + out_max);
    if (rc < 0) return rc;
    uint32_t status, out_len;
    uint16_t flags;
    memrange_execute(srv->range, &req, c->rbuf + c->rpos + AMW_REQ_HEADER_SIZE,
                     c->wbuf + c->wlen + AMW_RESP_HEADER_SIZE, &status, &flags, &out_len);
    amw_encode_response(c->wbuf + c->wlen, req.opcode, flags, req.request_id, status, out_len);
    c->wlen += AMW_RESP_HEADER_SIZE + out_len;
    c->rpos += total;
  }
  if (c->rpos == c->rlen) c->rpos = c->rlen = 0;
  return 0;
}

/* Send queued output; returns 0 or -errno (-EPIPE etc. close the connection). */
static int conn_flush(struct conn *c) {
  while (c->wpos < c->wlen) {
    ssize_t n = send(c->fd, c->wbuf + c->wpos, c->wlen - c->wpos, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
      return -errno;
    }
    c->wpos += (size_t)n;
  }
  c->wpos = c->wlen = 0;
  return 0;
}

/* Receive what is available into rbuf (at most READ_CHUNK per call). */
static int conn_fill(struct conn *c) {
  if (c->rpos > 0 && c->rpos == c->rlen) c->rpos = c->rlen = 0;
  if (c->rcap - c->rlen < 4096 && c->rpos > 0) {
    memmove(c->rbuf, c->rbuf + c->rpos, c->rlen - c->rpos);
    c->rlen -= c->rpos;
    c->rpos = 0;
  }
  size_t room = c->rcap - c->rlen;
  if (room == 0) return 0; /* a full request is buffered; conn_process will take it */
  if (room > READ_CHUNK) room = READ_CHUNK;
  ssize_t n = recv(c->fd, c->rbuf + c->rlen, room, 0);
  if (n < 0) {
    if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) return 0;
    return -errno;
  }
  if (n == 0) {
    c->peer_closed = 1;
    return 0;
  }
  c->rlen += (size_t)n;
  return 0;
}

static ae_file_proc conn_event;

/* Watch for input only while we accept more requests, for output only while some waits. */
static int conn_update_events(struct server *srv, struct conn *c) {
  int want = AE_NONE;
  int pending = c->wlen > c->wpos;
  if (pending) want |= AE_WRITABLE;
  if (c->state != CONN_DRAINING && !c->peer_closed && c->wlen - c->wpos < WBUF_HIGH)
    want |= AE_READABLE;
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
  if ((mask & AE_READABLE) && c->state != CONN_DRAINING) rc = conn_fill(c);
  if (rc == 0) rc = conn_process(srv, c);
  if (rc == 0) rc = conn_flush(c);
  /* output drained below the high-water mark: take the requests already buffered */
  if (rc == 0 && c->state != CONN_DRAINING && c->rlen > c->rpos) {
    rc = conn_process(srv, c);
    if (rc == 0) rc = conn_flush(c);
  }
  int done = c->wpos == c->wlen && (c->state == CONN_DRAINING || c->peer_closed);
  if (rc < 0 || done) {
    conn_close(srv, c);
    return;
  }
  if (conn_update_events(srv, c) < 0) conn_close(srv, c);
}

static void accept_event(ae_loop *loop, int fd, void *data, int mask) {
  (void)loop;
  (void)mask;
  struct server *srv = data;
  for (int i = 0; i < 64; i++) { /* a bounded batch per wake-up */
    int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (cfd < 0) return; /* EAGAIN, or a transient error (EMFILE...): retry on next wake-up */
    if (cfd >= srv->setsize) {
      close(cfd);
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
    c->state = CONN_READING;
    c->rbuf = rbuf;
    c->rcap = RBUF_INITIAL;
    if (ae_add(srv->loop, cfd, AE_READABLE, conn_event, c) < 0) {
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

static void signal_event(ae_loop *loop, int fd, void *data, int mask) {
  (void)data;
  (void)mask;
  struct signalfd_siginfo si;
  if (read(fd, &si, sizeof si) == (ssize_t)sizeof si) ae_stop(loop);
}

int server_init(struct server *srv, int listen_fd, struct memrange *range) {
  memset(srv, 0, sizeof *srv);
  srv->listen_fd = listen_fd;
  srv->signal_fd = -1;
  srv->range = range;
  struct rlimit rl;
  srv->setsize = 1024;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
    srv->setsize = rl.rlim_cur > 65536 ? 65536 : (int)rl.rlim_cur;
  srv->conns = calloc((size_t)srv->setsize, sizeof *srv->conns);
  if (!srv->conns) return -ENOMEM;
  int rc = ae_create(&srv->loop, srv->setsize);
  if (rc < 0) goto fail;
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
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
}
