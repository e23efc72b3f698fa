/*
 * The ceilings of `npm run bench:pages`, in C like the page server (one
 * thread, epoll, non-blocking), so the comparison measures the protocol and
 * not the language:
 *
 *   peer echo          echoes every byte back (the 4 KiB request/response ceiling)
 *   peer source BYTES  writes BYTES to each connection, then closes it (the bulk ceiling);
 *                      the bytes come from a BYTES-long buffer written once at start, so
 *                      the copy reads as much distinct memory as a page server serving
 *                      BYTES of its range (a reused 1 MiB buffer would stay in cache)
 *
 * Listens on 127.0.0.1 port 0 and prints `listening 127.0.0.1:PORT` first.
 * Built by the benchmark into a temp directory: gcc -O2 peer.c -o peer.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF_SIZE (256 * 1024)

struct conn {
  int fd;
  /* echo: bytes read but not yet written back */
  char *buf;
  size_t off, len;
  /* source: bytes still to send */
  unsigned long long left;
};

static int source_mode;
static unsigned long long source_bytes;
static char *source_buf;
#define SEND_CHUNK (1u << 20)

static void drop(int ep, struct conn *c) {
  epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
  close(c->fd);
  free(c->buf);
  free(c);
}

static void set_interest(int ep, struct conn *c, unsigned events) {
  struct epoll_event ev = {.events = events, .data.ptr = c};
  epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Returns 0 to keep the connection, -1 to drop it. */
static int on_source(int ep, struct conn *c) {
  while (c->left > 0) {
    size_t n = c->left < SEND_CHUNK ? (size_t)c->left : SEND_CHUNK;
    ssize_t w = send(c->fd, source_buf + (source_bytes - c->left), n, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EAGAIN) return 0;
      if (errno == EINTR) continue;
      return -1;
    }
    c->left -= (unsigned long long)w;
  }
  (void)ep;
  shutdown(c->fd, SHUT_WR);
  return -1;
}

static int on_echo(int ep, struct conn *c) {
  for (;;) {
    while (c->off < c->len) { /* flush what is pending first */
      ssize_t w = send(c->fd, c->buf + c->off, c->len - c->off, MSG_NOSIGNAL);
      if (w < 0) {
        if (errno == EAGAIN) {
          set_interest(ep, c, EPOLLOUT);
          return 0;
        }
        if (errno == EINTR) continue;
        return -1;
      }
      c->off += (size_t)w;
    }
    c->off = c->len = 0;
    ssize_t r = recv(c->fd, c->buf, BUF_SIZE, 0);
    if (r == 0) return -1;
    if (r < 0) {
      if (errno == EAGAIN) {
        set_interest(ep, c, EPOLLIN);
        return 0;
      }
      if (errno == EINTR) continue;
      return -1;
    }
    c->len = (size_t)r;
  }
}

int main(int argc, char **argv) {
  if (argc >= 2 && strcmp(argv[1], "echo") == 0) {
    source_mode = 0;
  } else if (argc >= 3 && strcmp(argv[1], "source") == 0) {
    source_mode = 1;
    source_bytes = strtoull(argv[2], NULL, 0);
    source_buf = malloc(source_bytes ? source_bytes : 1);
    if (!source_buf) {
      perror("malloc");
      return 1;
    }
    memset(source_buf, 0x5a, source_bytes);
  } else {
    fprintf(stderr, "usage: peer echo | peer source BYTES\n");
    return 2;
  }
  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(lfd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(lfd, 512) < 0) {
    perror("bind/listen");
    return 1;
  }
  socklen_t sl = sizeof sa;
  getsockname(lfd, (struct sockaddr *)&sa, &sl);
  printf("listening 127.0.0.1:%u\n", ntohs(sa.sin_port));
  fflush(stdout);

  int ep = epoll_create1(0);
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
  epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
  struct epoll_event events[128];
  for (;;) {
    int n = epoll_wait(ep, events, 128, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      perror("epoll_wait");
      return 1;
    }
    for (int i = 0; i < n; i++) {
      struct conn *c = events[i].data.ptr;
      if (c == NULL) {
        int fd;
        while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
          setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          c = calloc(1, sizeof *c);
          c->fd = fd;
          if (source_mode) {
            c->left = source_bytes;
          } else {
            c->buf = malloc(BUF_SIZE);
          }
          struct epoll_event cev = {.events = source_mode ? EPOLLOUT : EPOLLIN, .data.ptr = c};
          epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev);
        }
        continue;
      }
      int rc = source_mode ? on_source(ep, c) : on_echo(ep, c);
      if (rc < 0) drop(ep, c);
    }
  }
}
