/* ae_epoll.c - the epoll backend of the event loop; included by ae.c only. */
#include <sys/epoll.h>
#include <unistd.h>

struct ae_api_state {
  int epfd;
  struct epoll_event *events;
};

static int ae_api_create(ae_loop *loop) {
  struct ae_api_state *st = malloc(sizeof *st);
  if (!st) return -ENOMEM;
  st->events = calloc((size_t)loop->setsize, sizeof *st->events);
  if (!st->events) {
    free(st);
    return -ENOMEM;
  }
  st->epfd = epoll_create1(EPOLL_CLOEXEC);
  if (st->epfd < 0) {
    int err = errno;
    free(st->events);
    free(st);
    return -err;
  }
  loop->api = st;
  return 0;
}

static void ae_api_free(ae_loop *loop) {
  struct ae_api_state *st = loop->api;
  if (!st) return;
  close(st->epfd);
  free(st->events);
  free(st);
  loop->api = NULL;
}

static uint32_t ae_api_to_epoll(int mask) {
  uint32_t ev = 0;
  if (mask & AE_READABLE) ev |= EPOLLIN;
  if (mask & AE_WRITABLE) ev |= EPOLLOUT;
  return ev;
}

static int ae_api_add(ae_loop *loop, int fd, int oldmask, int addmask) {
  struct ae_api_state *st = loop->api;
  struct epoll_event ee = {0};
  ee.events = ae_api_to_epoll(oldmask | addmask);
  ee.data.fd = fd;
  int op = oldmask == AE_NONE ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
  if (epoll_ctl(st->epfd, op, fd, &ee) < 0) return -errno;
  return 0;
}

static int ae_api_del(ae_loop *loop, int fd, int oldmask, int delmask) {
  struct ae_api_state *st = loop->api;
  int mask = oldmask & ~delmask;
  struct epoll_event ee = {0};
  ee.events = ae_api_to_epoll(mask);
  ee.data.fd = fd;
  int op = mask == AE_NONE ? EPOLL_CTL_DEL : EPOLL_CTL_MOD;
  if (epoll_ctl(st->epfd, op, fd, &ee) < 0) return -errno;
  return 0;
}

/* Wait for events; fill loop->fired; return how many, or -errno. */
static int ae_api_poll(ae_loop *loop, int timeout_ms) {
  struct ae_api_state *st = loop->api;
  int n = epoll_wait(st->epfd, st->events, loop->setsize, timeout_ms);
  if (n < 0) return -errno;
  for (int i = 0; i < n; i++) {
    uint32_t e = st->events[i].events;
    int mask = AE_NONE;
    if (e & EPOLLIN) mask |= AE_READABLE;
    if (e & EPOLLOUT) mask |= AE_WRITABLE;
    /* errors and hang-ups surface through read/write */
    if (e & (EPOLLERR | EPOLLHUP)) mask |= AE_READABLE | AE_WRITABLE;
    loop->fired[i].fd = st->events[i].data.fd;
    loop->fired[i].mask = mask;
  }
  return n;
}
