/*
 * devbench.c - the I/O driver of `npm run bench:dev`: the same loop of
 * sequential or 4 KiB random reads/writes, one request at a time (queue depth
 * 1), against
 *   file PATH            a file: the FUSE mount's device file, or the image itself
 *   nbd HOST:PORT NAME   an NBD server (newstyle fixed handshake, NBD_OPT_EXPORT_NAME,
 *                        NBD_CMD_READ / NBD_CMD_WRITE, simple replies)
 *   amw HOST:PORT NAME   the page server's device requests directly (devclient.c)
 * and prints one JSON line: {"target","op","bs","ops","bytes","seconds","mb_s",
 * "iops","p50_us","p99_us"}.
 *
 * usage: devbench TARGET... --op seqread|seqwrite|randread|randwrite
 *                 [--bs BYTES] [--ops N] [--span BYTES] [--seed N]
 * Sequential ops walk [0, span) from 0 and wrap; random ops pick bs-aligned
 * offsets in [0, span). span defaults to the target's size.
 */
#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "devclient.h"

enum target_kind { T_FILE, T_NBD, T_AMW };

struct target {
  enum target_kind kind;
  int fd;
  uint64_t size;
  struct dev_endpoint *ep;
  const char *dev;
  uint64_t cookie;
};

static void die(const char *msg) {
  fprintf(stderr, "devbench: %s\n", msg);
  exit(1);
}

static int full_send(int fd, const void *buf, size_t len) {
  const uint8_t *p = buf;
  while (len) {
    ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

static int full_recv(int fd, void *buf, size_t len) {
  uint8_t *p = buf;
  while (len) {
    ssize_t n = recv(fd, p, len, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return -1;
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

static int tcp_connect(const char *hostport) {
  char host[256], port[16];
  const char *colon = strrchr(hostport, ':');
  if (!colon || (size_t)(colon - hostport) >= sizeof host || strlen(colon + 1) >= sizeof port)
    die("expected HOST:PORT");
  memcpy(host, hostport, (size_t)(colon - hostport));
  host[colon - hostport] = '\0';
  strcpy(port, colon + 1);
  struct addrinfo hints = {0}, *res;
  hints.ai_socktype = SOCK_STREAM;
  if (getaddrinfo(host, port, &hints, &res) != 0) die("cannot resolve the address");
  int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || connect(fd, res->ai_addr, res->ai_addrlen) < 0) die("cannot connect");
  freeaddrinfo(res);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

#define NBD_OPTS_MAGIC 0x49484156454F5054ull /* "IHAVEOPT" */
#define NBD_REQUEST_MAGIC 0x25609513u
#define NBD_REPLY_MAGIC 0x67446698u
#define NBD_FLAG_FIXED_NEWSTYLE 1u
#define NBD_FLAG_NO_ZEROES 2u
#define NBD_OPT_EXPORT_NAME 1u
#define NBD_CMD_READ 0
#define NBD_CMD_WRITE 1

static void nbd_open(struct target *t, const char *hostport, const char *name) {
  t->fd = tcp_connect(hostport);
  uint8_t hello[18];
  if (full_recv(t->fd, hello, sizeof hello) < 0) die("nbd: no greeting");
  if (memcmp(hello, "NBDMAGIC", 8) != 0) die("nbd: not an NBD server");
  uint64_t opts;
  memcpy(&opts, hello + 8, 8);
  if (be64toh(opts) != NBD_OPTS_MAGIC) die("nbd: not a newstyle server");
  uint16_t hflags;
  memcpy(&hflags, hello + 16, 2);
  hflags = ntohs(hflags);
  uint32_t cflags = NBD_FLAG_FIXED_NEWSTYLE | (hflags & NBD_FLAG_NO_ZEROES);
  uint32_t be = htonl(cflags);
  if (full_send(t->fd, &be, 4) < 0) die("nbd: send failed");
  uint8_t opt[16];
  uint64_t m = htobe64(NBD_OPTS_MAGIC);
  uint32_t o = htonl(NBD_OPT_EXPORT_NAME), l = htonl((uint32_t)strlen(name));
  memcpy(opt, &m, 8);
  memcpy(opt + 8, &o, 4);
  memcpy(opt + 12, &l, 4);
  if (full_send(t->fd, opt, 16) < 0 || full_send(t->fd, name, strlen(name)) < 0)
    die("nbd: send failed");
  uint8_t rep[10 + 124];
  size_t replen = 10 + ((cflags & NBD_FLAG_NO_ZEROES) ? 0 : 124);
  if (full_recv(t->fd, rep, replen) < 0) die("nbd: the server refused the export");
  uint64_t size;
  memcpy(&size, rep, 8);
  t->size = be64toh(size);
}

static int nbd_io(struct target *t, int wr, void *buf, uint32_t len, uint64_t off) {
  uint8_t req[28];
  uint32_t magic = htonl(NBD_REQUEST_MAGIC);
  uint16_t flags = 0, type = htons(wr ? NBD_CMD_WRITE : NBD_CMD_READ);
  uint64_t cookie = htobe64(++t->cookie), boff = htobe64(off);
  uint32_t blen = htonl(len);
  memcpy(req, &magic, 4);
  memcpy(req + 4, &flags, 2);
  memcpy(req + 6, &type, 2);
  memcpy(req + 8, &cookie, 8);
  memcpy(req + 16, &boff, 8);
  memcpy(req + 24, &blen, 4);
  if (full_send(t->fd, req, sizeof req) < 0) return -1;
  if (wr && full_send(t->fd, buf, len) < 0) return -1;
  uint8_t rep[16];
  if (full_recv(t->fd, rep, sizeof rep) < 0) return -1;
  uint32_t rmagic, err;
  memcpy(&rmagic, rep, 4);
  memcpy(&err, rep + 4, 4);
  if (ntohl(rmagic) != NBD_REPLY_MAGIC || memcmp(rep + 8, &cookie, 8) != 0 || err) return -1;
  if (!wr && full_recv(t->fd, buf, len) < 0) return -1;
  return 0;
}

static int do_io(struct target *t, int wr, void *buf, uint32_t len, uint64_t off) {
  switch (t->kind) {
  case T_FILE: {
    ssize_t n = wr ? pwrite(t->fd, buf, len, (off_t)off) : pread(t->fd, buf, len, (off_t)off);
    return n == (ssize_t)len ? 0 : -1;
  }
  case T_NBD: return nbd_io(t, wr, buf, len, off);
  case T_AMW: {
    long n = wr ? devclient_write(t->ep, t->dev, off, buf, len)
                : devclient_read(t->ep, t->dev, off, buf, len);
    return n == (long)len ? 0 : -1;
  }
  }
  return -1;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  if (argc < 3) die("usage: devbench file PATH | nbd HOST:PORT NAME | amw HOST:PORT DEV  --op OP ...");
  struct target t = {0};
  int argi;
  const char *label = argv[1];
  if (strcmp(argv[1], "file") == 0) {
    t.kind = T_FILE;
    argi = 3;
  } else if (strcmp(argv[1], "nbd") == 0 || strcmp(argv[1], "amw") == 0) {
    if (argc < 4) die("nbd/amw need HOST:PORT NAME");
    t.kind = strcmp(argv[1], "nbd") == 0 ? T_NBD : T_AMW;
    argi = 4;
  } else {
    die("target must be file, nbd or amw");
  }
  const char *op = "seqread";
  uint64_t bs = 4096, nops = 1000, span = 0, seed = 1;
  for (int i = argi; i < argc; i++) {
    if (i + 1 >= argc) die("missing value");
    if (strcmp(argv[i], "--op") == 0) op = argv[++i];
    else if (strcmp(argv[i], "--bs") == 0) bs = strtoull(argv[++i], NULL, 0);
    else if (strcmp(argv[i], "--ops") == 0) nops = strtoull(argv[++i], NULL, 0);
    else if (strcmp(argv[i], "--span") == 0) span = strtoull(argv[++i], NULL, 0);
    else if (strcmp(argv[i], "--seed") == 0) seed = strtoull(argv[++i], NULL, 0);
    else die("unknown option");
  }
  int wr = strstr(op, "write") != NULL, rnd = strncmp(op, "rand", 4) == 0;
  if (t.kind == T_FILE) {
    t.fd = open(argv[2], (wr ? O_RDWR : O_RDONLY) | O_CLOEXEC);
    if (t.fd < 0) die("cannot open the file");
    struct stat st;
    fstat(t.fd, &st);
    t.size = (uint64_t)st.st_size;
  } else if (t.kind == T_NBD) {
    nbd_open(&t, argv[2], argv[3]);
  } else {
    char err[300];
    if (devclient_init(NULL, NULL, NULL, 10000, err, sizeof err) < 0) die(err);
    t.ep = devclient_endpoint(argv[2], 0, NULL); /* plaintext: nothing to check */
    t.dev = argv[3];
    uint32_t flags;
    if (!t.ep || devclient_stat(t.ep, t.dev, &t.size, &flags) < 0) die("cannot stat the device");
  }
  if (span == 0 || span > t.size) span = t.size;
  if (bs == 0 || bs > span || bs > (64u << 20)) die("bad --bs");
  uint8_t *buf;
  if (posix_memalign((void **)&buf, 4096, bs) != 0) die("out of memory");
  srand48((long)seed);
  for (uint64_t i = 0; i < bs; i++) buf[i] = (uint8_t)lrand48();
  double *lat = malloc(sizeof(double) * (nops ? nops : 1));
  if (!lat) die("out of memory");
  uint64_t blocks = span / bs, pos = 0;
  double t0 = now_s();
  for (uint64_t i = 0; i < nops; i++) {
    uint64_t off;
    if (rnd) {
      off = ((uint64_t)lrand48() * 2147483648ull + (uint64_t)lrand48()) % blocks * bs;
    } else {
      if (pos + bs > span) pos = 0;
      off = pos;
      pos += bs;
    }
    double s = now_s();
    if (do_io(&t, wr, buf, (uint32_t)bs, off) < 0) {
      fprintf(stderr, "devbench: %s %s at %llu failed: %s\n", label, op, (unsigned long long)off,
              strerror(errno));
      return 1;
    }
    lat[i] = now_s() - s;
  }
  double secs = now_s() - t0;
  if (t.kind == T_NBD) { /* NBD_CMD_DISC: a clean goodbye */
    uint8_t req[28] = {0};
    uint32_t magic = htonl(NBD_REQUEST_MAGIC);
    uint16_t type = htons(2);
    memcpy(req, &magic, 4);
    memcpy(req + 6, &type, 2);
    (void)full_send(t.fd, req, sizeof req);
    close(t.fd);
  }
  qsort(lat, nops, sizeof *lat, cmp_double);
  double bytes = (double)nops * (double)bs;
  printf("{\"target\":\"%s\",\"op\":\"%s\",\"bs\":%llu,\"ops\":%llu,\"bytes\":%.0f,"
         "\"seconds\":%.6f,\"mb_s\":%.2f,\"iops\":%.1f,\"p50_us\":%.1f,\"p99_us\":%.1f}\n",
         label, op, (unsigned long long)bs, (unsigned long long)nops, bytes, secs,
         bytes / secs / 1e6, (double)nops / secs, lat[nops / 2] * 1e6,
         lat[(size_t)((double)nops * 0.99)] * 1e6);
  return 0;
}
