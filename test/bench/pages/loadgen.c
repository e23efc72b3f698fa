/*
 * The load generator of `npm run bench:pages`: one C program drives every
 * system the same way, so the figures measure the servers and not the client
 * (a Node client on 2 cores saturated before the servers did).
 *
 *   loadgen ops PROTO PORT CONNS SECONDS PAGES BASE [TLS]
 *       CONNS threads, each a closed loop on its own blocking connection (one
 *       request in flight): 4 KiB ops, 50% reads and 50% writes, on random
 *       pages of PAGES. PROTO is pages (BASE = the first global address),
 *       redis (GET/SET of keys p<N>, 4096-byte values) or echo (4 KiB out,
 *       4 KiB back). Prints {"ops","seconds","opsPerSec","p50us","p99us"}.
 *   loadgen prefill PROTO PORT PAGES BASE [TLS]   writes every page once
 *   loadgen bulk PORT BYTES BASE WINDOW [TLS]     reads BYTES from a page
 *       server in 1 MiB READs, WINDOW in flight on one connection;
 *       prints {"MBps"}
 *   loadgen drain PORT BYTES                      reads a plain socket to EOF
 *       (the bulk ceiling, against `peer source`); prints {"MBps"}
 *
 *   TLS = --tls CERT KEY CA NAME: mutual TLS (OpenSSL) as a cluster member,
 *   checking that the server's certificate names node NAME.
 *
 * Built by the benchmark: gcc -O2 -pthread -Inative/include loadgen.c -lssl -lcrypto
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "amalgam_wire.h"

#define PAGE 4096
#define CHUNK (1u << 20)

static void die(const char *what) {
  fprintf(stderr, "loadgen: %s: %s\n", what, errno ? strerror(errno) : "failed");
  ERR_print_errors_fp(stderr);
  exit(1);
}

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ------------------------------------------------------------ connections */

static SSL_CTX *tls_ctx;
static const char *tls_name;

struct io {
  int fd;
  SSL *ssl;
};

static struct io dial(int port) {
  struct io io = {socket(AF_INET, SOCK_STREAM, 0), NULL};
  if (io.fd < 0) die("socket");
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(io.fd, (struct sockaddr *)&sa, sizeof sa) != 0) die("connect");
  int one = 1;
  setsockopt(io.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (tls_ctx) {
    io.ssl = SSL_new(tls_ctx);
    SSL_set_fd(io.ssl, io.fd);
    SSL_set1_host(io.ssl, tls_name);
    if (SSL_connect(io.ssl) != 1) die("TLS handshake");
  }
  return io;
}

static void hang_up(struct io *io) {
  if (io->ssl) {
    SSL_shutdown(io->ssl);
    SSL_free(io->ssl);
  }
  close(io->fd);
}

static void send_all(struct io *io, const void *buf, size_t len) {
  const char *p = buf;
  while (len > 0) {
    ssize_t n = io->ssl ? SSL_write(io->ssl, p, (int)len) : send(io->fd, p, len, MSG_NOSIGNAL);
    if (n <= 0) {
      if (!io->ssl && n < 0 && errno == EINTR) continue;
      die("send");
    }
    p += n;
    len -= (size_t)n;
  }
}

/* Reads up to len bytes (at least 1); 0 at end of stream. */
static size_t recv_some(struct io *io, void *buf, size_t len) {
  for (;;) {
    ssize_t n = io->ssl ? SSL_read(io->ssl, buf, (int)len) : recv(io->fd, buf, len, 0);
    if (n > 0) return (size_t)n;
    if (n == 0) return 0;
    if (!io->ssl && errno == EINTR) continue;
    if (io->ssl && SSL_get_error(io->ssl, (int)n) == SSL_ERROR_ZERO_RETURN) return 0;
    die("recv");
  }
}

static void recv_all(struct io *io, void *buf, size_t len) {
  char *p = buf;
  while (len > 0) {
    size_t n = recv_some(io, p, len);
    if (n == 0) die("connection closed");
    p += n;
    len -= n;
  }
}

/* --------------------------------------------------------------- protocols */

static int proto_pages, proto_redis;
static uint64_t base_addr;

static void pages_header(struct amw_req_header *h, uint8_t op, uint64_t id, uint64_t addr,
                         uint32_t len) {
  memset(h, 0, sizeof *h);
  h->magic = htole32(AMW_MAGIC);
  h->version = AMW_VERSION;
  h->opcode = op;
  h->request_id = htole64(id);
  h->addr = htole64(addr);
  h->length = htole32(len);
}

static void pages_answer(struct io *io, void *payload, uint32_t want) {
  struct amw_resp_header r;
  recv_all(io, &r, sizeof r);
  if (le32toh(r.magic) != AMW_MAGIC || le32toh(r.status) != AMW_OK) die("page server error");
  uint32_t len = le32toh(r.length);
  if (len != want) die("page server answered an unexpected length");
  if (len) recv_all(io, payload, len);
}

/* One 4 KiB op; buf is PAGE bytes (the value written, or where a read lands). */
static void one_op(struct io *io, int write, uint64_t page, uint64_t id, char *buf) {
  if (proto_pages) {
    struct amw_req_header h;
    pages_header(&h, write ? AMW_OP_WRITE : AMW_OP_READ, id, base_addr + page * PAGE, PAGE);
    if (write) {
      char out[sizeof h + PAGE];
      memcpy(out, &h, sizeof h);
      memcpy(out + sizeof h, buf, PAGE);
      send_all(io, out, sizeof out);
      pages_answer(io, NULL, 0);
    } else {
      send_all(io, &h, sizeof h);
      pages_answer(io, buf, PAGE);
    }
  } else if (proto_redis) {
    char key[32];
    int klen = snprintf(key, sizeof key, "p%llu", (unsigned long long)page);
    char out[64 + PAGE + 2];
    int n;
    if (write) {
      n = snprintf(out, 64, "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n", klen, key, PAGE);
      memcpy(out + n, buf, PAGE);
      memcpy(out + n + PAGE, "\r\n", 2);
      send_all(io, out, (size_t)n + PAGE + 2);
      char ok[5];
      recv_all(io, ok, 5);
      if (memcmp(ok, "+OK\r\n", 5) != 0) die("redis SET");
    } else {
      n = snprintf(out, sizeof out, "*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n", klen, key);
      send_all(io, out, (size_t)n);
      char head[7]; /* "$4096\r\n" */
      recv_all(io, head, 7);
      if (memcmp(head, "$4096\r\n", 7) != 0) die("redis GET: not a 4096-byte value");
      recv_all(io, buf, PAGE);
      recv_all(io, head, 2);
    }
  } else { /* echo */
    send_all(io, buf, PAGE);
    recv_all(io, buf, PAGE);
  }
}

/* -------------------------------------------------------------------- ops */

struct worker {
  pthread_t thread;
  int port;
  uint64_t pages;
  uint64_t seed;
  uint64_t *lat;
  size_t n, cap;
};

static pthread_barrier_t start_line;
static uint64_t deadline_ns;

static void *run_worker(void *arg) {
  struct worker *w = arg;
  struct io io = dial(w->port);
  char buf[PAGE];
  memset(buf, 0xa5, sizeof buf);
  uint64_t x = w->seed | 1;
  pthread_barrier_wait(&start_line);
  for (uint64_t id = 1;; id++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    uint64_t t0 = now_ns();
    if (t0 >= deadline_ns) break;
    one_op(&io, (int)(x >> 63), (x >> 1) % w->pages, id, buf);
    if (w->n == w->cap) {
      w->cap = w->cap ? w->cap * 2 : 65536;
      w->lat = realloc(w->lat, w->cap * sizeof *w->lat);
      if (!w->lat) die("realloc");
    }
    w->lat[w->n++] = now_ns() - t0;
  }
  hang_up(&io);
  return NULL;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static void cmd_ops(int port, int conns, double seconds, uint64_t pages) {
  struct worker *w = calloc((size_t)conns, sizeof *w);
  pthread_barrier_init(&start_line, NULL, (unsigned)conns + 1);
  deadline_ns = UINT64_MAX;
  for (int i = 0; i < conns; i++) {
    w[i].port = port;
    w[i].pages = pages;
    w[i].seed = 0x9e3779b97f4a7c15ull * (uint64_t)(i + 1);
    if (pthread_create(&w[i].thread, NULL, run_worker, &w[i]) != 0) die("pthread_create");
  }
  uint64_t t0 = now_ns();
  deadline_ns = t0 + (uint64_t)(seconds * 1e9);
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
  pthread_barrier_wait(&start_line);
  size_t total = 0;
  for (int i = 0; i < conns; i++) {
    pthread_join(w[i].thread, NULL);
    total += w[i].n;
  }
  double secs = (double)(now_ns() - t0) / 1e9;
  uint64_t *all = malloc((total ? total : 1) * sizeof *all);
  size_t k = 0;
  for (int i = 0; i < conns; i++) {
    memcpy(all + k, w[i].lat, w[i].n * sizeof *all);
    k += w[i].n;
    free(w[i].lat);
  }
  qsort(all, total, sizeof *all, cmp_u64);
  double p50 = total ? (double)all[total / 2] / 1e3 : 0;
  double p99 = total ? (double)all[(size_t)((double)total * 0.99)] / 1e3 : 0;
  printf("{\"ops\":%zu,\"seconds\":%.3f,\"opsPerSec\":%.0f,\"p50us\":%.1f,\"p99us\":%.1f}\n", total,
         secs, (double)total / secs, p50, p99);
  free(all);
  free(w);
}

static void cmd_prefill(int port, uint64_t pages) {
  struct io io = dial(port);
  char buf[PAGE];
  memset(buf, 0xa5, sizeof buf);
  for (uint64_t p = 0; p < pages; p++) one_op(&io, 1, p, p + 1, buf);
  hang_up(&io);
  printf("{\"pages\":%llu}\n", (unsigned long long)pages);
}

/* ------------------------------------------------------------------- bulk */

static void cmd_bulk(int port, uint64_t bytes, int window) {
  struct io io = dial(port);
  char *target = aligned_alloc(4096, CHUNK);
  uint64_t chunks = bytes / CHUNK, sent = 0, done = 0;
  uint64_t t0 = now_ns();
  struct amw_req_header h;
  for (; sent < chunks && sent < (uint64_t)window; sent++) {
    pages_header(&h, AMW_OP_READ, sent + 1, base_addr + sent * CHUNK, CHUNK);
    send_all(&io, &h, sizeof h);
  }
  while (done < chunks) {
    pages_answer(&io, target, CHUNK);
    done++;
    if (sent < chunks) {
      pages_header(&h, AMW_OP_READ, sent + 1, base_addr + sent * CHUNK, CHUNK);
      send_all(&io, &h, sizeof h);
      sent++;
    }
  }
  double secs = (double)(now_ns() - t0) / 1e9;
  hang_up(&io);
  free(target);
  printf("{\"MBps\":%.0f}\n", (double)bytes / 1e6 / secs);
}

static void cmd_drain(int port, uint64_t bytes) {
  struct io io = dial(port);
  char *target = aligned_alloc(4096, CHUNK);
  uint64_t got = 0;
  uint64_t t0 = now_ns();
  for (size_t n; (n = recv_some(&io, target, CHUNK)) > 0;) got += n;
  double secs = (double)(now_ns() - t0) / 1e9;
  hang_up(&io);
  free(target);
  if (got != bytes) die("the plain socket sent a different number of bytes");
  printf("{\"MBps\":%.0f}\n", (double)bytes / 1e6 / secs);
}

/* ------------------------------------------------------------------- main */

static void setup_tls(int argc, char **argv, int at) {
  if (at >= argc) return;
  if (strcmp(argv[at], "--tls") != 0 || at + 4 >= argc) die("usage: --tls CERT KEY CA NAME");
  tls_ctx = SSL_CTX_new(TLS_client_method());
  if (!tls_ctx || SSL_CTX_use_certificate_chain_file(tls_ctx, argv[at + 1]) != 1 ||
      SSL_CTX_use_PrivateKey_file(tls_ctx, argv[at + 2], SSL_FILETYPE_PEM) != 1 ||
      SSL_CTX_load_verify_locations(tls_ctx, argv[at + 3], NULL) != 1)
    die("TLS credentials");
  SSL_CTX_set_verify(tls_ctx, SSL_VERIFY_PEER, NULL);
  SSL_CTX_set_min_proto_version(tls_ctx, TLS1_2_VERSION);
  tls_name = argv[at + 4];
}

static uint64_t num(const char *s) {
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 0);
  if (errno || *end) {
    fprintf(stderr, "loadgen: not a number: %s\n", s);
    exit(2);
  }
  return v;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: see the comment at the top of loadgen.c\n");
    return 2;
  }
  const char *cmd = argv[1];
  if (strcmp(cmd, "ops") == 0 || strcmp(cmd, "prefill") == 0) {
    const char *proto = argv[2];
    proto_pages = strcmp(proto, "pages") == 0;
    proto_redis = strcmp(proto, "redis") == 0;
    if (!proto_pages && !proto_redis && strcmp(proto, "echo") != 0) die("PROTO: pages|redis|echo");
    if (strcmp(cmd, "ops") == 0) {
      if (argc < 8) die("usage: ops PROTO PORT CONNS SECONDS PAGES BASE [TLS]");
      base_addr = num(argv[7]);
      setup_tls(argc, argv, 8);
      cmd_ops((int)num(argv[3]), (int)num(argv[4]), strtod(argv[5], NULL), num(argv[6]));
    } else {
      if (argc < 6) die("usage: prefill PROTO PORT PAGES BASE [TLS]");
      base_addr = num(argv[5]);
      setup_tls(argc, argv, 6);
      cmd_prefill((int)num(argv[3]), num(argv[4]));
    }
  } else if (strcmp(cmd, "bulk") == 0) {
    if (argc < 6) die("usage: bulk PORT BYTES BASE WINDOW [TLS]");
    proto_pages = 1;
    base_addr = num(argv[4]);
    setup_tls(argc, argv, 6);
    cmd_bulk((int)num(argv[2]), num(argv[3]), (int)num(argv[5]));
  } else if (strcmp(cmd, "drain") == 0) {
    if (argc < 4) die("usage: drain PORT BYTES");
    cmd_drain((int)num(argv[2]), num(argv[3]));
  } else {
    fprintf(stderr, "loadgen: unknown command %s\n", cmd);
    return 2;
  }
  return 0;
}
