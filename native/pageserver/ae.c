/* ae.c - the backend-independent part of the event loop (see ae.h). */
#include "ae.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

struct ae_file_event {
  int mask;
  ae_file_proc *proc;
  void *client_data;
};

struct ae_fired {
  int fd;
  int mask;
};

struct ae_loop {
  int setsize;
  int stop;
  struct ae_file_event *events; /* indexed by fd */
  struct ae_fired *fired;
  void *api; /* backend state */
  int tick_ms; /* 0: no tick */
  long long next_tick;
  ae_tick_proc *tick;
  void *tick_data;
};

/* The backend: defines ae_api_create/free/add/del/poll over struct ae_loop. */
#include "ae_epoll.c"

int ae_create(ae_loop **out, int setsize) {
  if (setsize <= 0) return -EINVAL;
  ae_loop *loop = calloc(1, sizeof *loop);
  if (!loop) return -ENOMEM;
  loop->setsize = setsize;
  loop->events = calloc((size_t)setsize, sizeof *loop->events);
  loop->fired = calloc((size_t)setsize, sizeof *loop->fired);
  if (!loop->events || !loop->fired) {
    free(loop->events);
    free(loop->fired);
    free(loop);
    return -ENOMEM;
  }
  int rc = ae_api_create(loop);
  if (rc < 0) {
    free(loop->events);
    free(loop->fired);
    free(loop);
    return rc;
  }
  *out = loop;
  return 0;
}

void ae_destroy(ae_loop *loop) {
  if (!loop) return;
  ae_api_free(loop);
  free(loop->events);
  free(loop->fired);
  free(loop);
}

int ae_add(ae_loop *loop, int fd, int mask, ae_file_proc *proc, void *client_data) {
  if (fd < 0 || fd >= loop->setsize) return -ERANGE;
  struct ae_file_event *fe = &loop->events[fd];
  int rc = ae_api_add(loop, fd, fe->mask, mask);
  if (rc < 0) return rc;
  fe->mask |= mask;
  fe->proc = proc;
  fe->client_data = client_data;
  return 0;
}

int ae_del(ae_loop *loop, int fd, int mask) {
  if (fd < 0 || fd >= loop->setsize) return -ERANGE;
  struct ae_file_event *fe = &loop->events[fd];
  if (fe->mask == AE_NONE) return 0;
  int rc = ae_api_del(loop, fd, fe->mask, mask);
  if (rc < 0) return rc;
  fe->mask &= ~mask;
  return 0;
}

int ae_mask(const ae_loop *loop, int fd) {
  if (fd < 0 || fd >= loop->setsize) return AE_NONE;
  return loop->events[fd].mask;
}

void ae_stop(ae_loop *loop) { loop->stop = 1; }

long long ae_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void ae_set_tick(ae_loop *loop, int period_ms, ae_tick_proc *proc, void *client_data) {
  loop->tick_ms = period_ms > 0 ? period_ms : 0;
  loop->tick = proc;
  loop->tick_data = client_data;
  loop->next_tick = ae_now_ms() + loop->tick_ms;
}

/* Run the tick when due; the poll timeout until the next one (-1: none). */
static int ae_tick_due(ae_loop *loop) {
  if (!loop->tick_ms || !loop->tick) return -1;
  long long now = ae_now_ms();
  if (now >= loop->next_tick) {
    loop->next_tick = now + loop->tick_ms;
    loop->tick(loop, loop->tick_data, now);
  }
  long long wait = loop->next_tick - ae_now_ms();
  return wait < 0 ? 0 : (int)wait;
}

int ae_run(ae_loop *loop) {
  loop->stop = 0;
  while (!loop->stop) {
    int timeout = ae_tick_due(loop);
    if (loop->stop) break;
    int n = ae_api_poll(loop, timeout);
    if (n == -EINTR) continue;
    if (n < 0) return n;
    for (int i = 0; i < n; i++) {
      int fd = loop->fired[i].fd;
      struct ae_file_event *fe = &loop->events[fd];
      /* an earlier callback in this batch may have removed the fd */
      int mask = loop->fired[i].mask & fe->mask;
      if (mask && fe->proc) fe->proc(loop, fd, fe->client_data, mask);
    }
  }
  return 0;
}
