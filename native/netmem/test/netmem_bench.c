/*
 * netmem_bench.c - the measurements of `npm run bench:netmem` (driven by
 * test/bench/netmem.bench.ts against running page servers; layout from
 * NETMEM_ROUTES). Every figure comes from this one process:
 *
 *   netmem_bench GLOBAL SIZE SAMPLES READAHEAD_KB [SCAN_ROUNDS]
 *
 *   read      explicit netmem_read of one random 4 KiB page: p50/p99 (us)
 *             (read, fault and local samples interleave, one of each in turn)
 *   fault     first touch of a random page of a mapping (no read-ahead):
 *             p50/p99 (us), fetch from the owner + UFFDIO_COPY + wake
 *   local     first touch of a page of a local userfaultfd region whose
 *             handler copies from memory: p50/p99 (us), the floor of a fault
 *   scan-ra   sum of every u64 of the mapped SIZE bytes with read-ahead (MB/s)
 *   scan-1    the same, one page per fault (MB/s)
 *   bulk      netmem_read of the SIZE bytes in 64 MiB calls (MB/s, the reads
 *             only; their checksum is computed untimed)
 * scan-ra and bulk alternate SCAN_ROUNDS (default 3) times; each reports its
 * best round (noise on a shared machine hits both alike).
 * The region is first filled with pseudo-random words (not timed); the three
 * ways of reading it must give the same sum (`sums_agree 1`).
 *
 * Output: one `key value` line per figure.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "../netmem.h"

#define PS 4096u

static double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static uint64_t rng = 88172645463325252ull;
static uint64_t next_rand(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static void report(const char *name, double *v, size_t n) {
  qsort(v, n, sizeof *v, cmp_d);
  printf("%s_p50_us %.2f\n%s_p99_us %.2f\n", name, v[n / 2], name, v[(n * 99) / 100]);
}

/* Distinct random page indexes. */
static size_t *random_pages(size_t npages, size_t n) {
  size_t *perm = malloc(npages * sizeof *perm);
  for (size_t i = 0; i < npages; i++) perm[i] = i;
  for (size_t i = 0; i < n && i < npages; i++) {
    size_t j = i + next_rand() % (npages - i);
    size_t t = perm[i];
    perm[i] = perm[j];
    perm[j] = t;
  }
  return perm;
}

/* ---- a local userfaultfd region served from memory ---- */
static int local_uffd;
static uint8_t *local_src;

static void *local_handler(void *arg) {
  uint8_t *base = arg;
  struct uffd_msg msg;
  for (;;) {
    struct pollfd p = {.fd = local_uffd, .events = POLLIN};
    if (poll(&p, 1, -1) < 0) continue;
    if (read(local_uffd, &msg, sizeof msg) != sizeof msg) {
      if (errno == EBADF) return NULL;
      continue;
    }
    if (msg.event != UFFD_EVENT_PAGEFAULT) continue;
    uint64_t a = msg.arg.pagefault.address & ~(uint64_t)(PS - 1);
    if (a == 0) return NULL;
    struct uffdio_copy c = {.dst = a, .src = (uintptr_t)(local_src + (a - (uintptr_t)base)),
                            .len = PS, .mode = 0};
    ioctl(local_uffd, UFFDIO_COPY, &c);
  }
}

/* A local region whose missing faults a thread serves from memory. */
#define LOCAL_PAGES 65536u /* 256 MiB */
static uint8_t *local_setup(pthread_t *th) {
  local_uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC);
  if (local_uffd < 0) return NULL;
  struct uffdio_api api = {.api = UFFD_API};
  if (ioctl(local_uffd, UFFDIO_API, &api)) return NULL;
  uint8_t *base = mmap(NULL, (size_t)LOCAL_PAGES * PS, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (base == MAP_FAILED) return NULL;
  local_src = malloc((size_t)LOCAL_PAGES * PS);
  memset(local_src, 0x5a, (size_t)LOCAL_PAGES * PS);
  madvise(base, (size_t)LOCAL_PAGES * PS, MADV_NOHUGEPAGE);
  struct uffdio_register reg = {.range = {(uintptr_t)base, (size_t)LOCAL_PAGES * PS},
                                .mode = UFFDIO_REGISTER_MODE_MISSING};
  if (ioctl(local_uffd, UFFDIO_REGISTER, &reg)) return NULL;
  pthread_create(th, NULL, local_handler, base);
  return base;
}

static void local_teardown(uint8_t *base, pthread_t th) {
  pthread_cancel(th);
  pthread_join(th, NULL);
  close(local_uffd);
  munmap(base, (size_t)LOCAL_PAGES * PS);
  free(local_src);
}

static double scan(uint64_t g, size_t size, int flags, uint64_t *sum_out) {
  double t0 = now_us();
  const uint64_t *p = netmem_map(g, size, flags);
  if (!p) {
    fprintf(stderr, "netmem_map: %s\n", strerror(errno));
    exit(1);
  }
  uint64_t sum = 0;
  for (size_t i = 0; i < size / 8; i++) sum += p[i];
  netmem_unmap((void *)p);
  double us = now_us() - t0;
  *sum_out = sum;
  return (double)size / us; /* bytes per us = MB/s */
}

int main(int argc, char **argv) {
  if (argc < 5) {
    fprintf(stderr, "usage: netmem_bench GLOBAL SIZE SAMPLES READAHEAD_KB [SCAN_ROUNDS]\n");
    return 2;
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  uint64_t g = strtoull(argv[1], NULL, 0);
  size_t size = strtoull(argv[2], NULL, 0);
  size_t samples = strtoull(argv[3], NULL, 0);
  size_t ra_kb = strtoull(argv[4], NULL, 0);
  size_t scan_rounds = argc > 5 ? strtoull(argv[5], NULL, 0) : 3;
  if (!scan_rounds) scan_rounds = 1;
  size_t npages = size / PS;
  if (samples > npages) samples = npages;
  char ra[32];
  snprintf(ra, sizeof ra, "%zu", ra_kb);
  setenv("NETMEM_READAHEAD_KB", ra, 1);
  setenv("NETMEM_FLUSH_MS", "0", 1);
  int rc = netmem_map_init_env();
  if (rc) {
    fprintf(stderr, "init: %s\n", strerror(-rc));
    return 1;
  }
  /* A plain client for explicit reads, on the same layout. */
  const char *text = getenv("NETMEM_ROUTES");
  struct netmem_route routes[16];
  char hosts[16][300];
  size_t n = 0;
  char *copy = strdup(text), *save = NULL;
  for (char *tok = strtok_r(copy, ", \n", &save); tok && n < 16; tok = strtok_r(NULL, ", \n", &save))
    if (netmem_parse_route(tok, &routes[n], hosts[n], sizeof hosts[n]) == 0) n++;
  struct netmem *nm;
  if (netmem_open(routes, n, &nm)) return 1;

  /* Fill the region with pseudo-random words (not timed). */
  uint64_t *fillbuf = malloc(64u << 20);
  for (size_t off = 0; off < size; off += 64u << 20) {
    size_t len = size - off < (64u << 20) ? size - off : 64u << 20;
    for (size_t i = 0; i < len / 8; i++) fillbuf[i] = next_rand();
    if ((rc = netmem_write(nm, g + off, fillbuf, len))) {
      fprintf(stderr, "fill: %s\n", strerror(-rc));
      return 1;
    }
  }
  free(fillbuf);

  /* Latencies: an explicit READ, a first touch of a mapped remote page and a
   * first touch of a local userfaultfd page, interleaved sample by sample so
   * the machine's noise hits the three alike. */
  double *lat_read = malloc(samples * sizeof(double)), *lat_fault = malloc(samples * sizeof(double)),
         *lat_local = malloc(samples * sizeof(double));
  uint8_t page[PS];
  netmem_read(nm, g, page, PS); /* connect */
  volatile uint8_t *m = netmem_map(g, size, NETMEM_MAP_NOREADAHEAD);
  if (!m) return 1;
  (void)m[0]; /* connect */
  pthread_t lth;
  uint8_t *local = local_setup(&lth);
  if (!local) {
    fprintf(stderr, "local userfaultfd: %s\n", strerror(errno));
    return 1;
  }
  size_t *rpages = random_pages(npages, samples), *fpages = random_pages(npages, samples + 1),
         *lpages = random_pages(LOCAL_PAGES, samples);
  volatile uint8_t sink = 0;
  for (size_t i = 0; i < samples; i++) {
    double t0 = now_us();
    if (netmem_read(nm, g + rpages[i] * PS, page, PS)) return 1;
    lat_read[i] = now_us() - t0;
    size_t pg = fpages[i] ? fpages[i] : fpages[samples]; /* page 0 is already in */
    t0 = now_us();
    sink += m[pg * PS + 7];
    lat_fault[i] = now_us() - t0;
    t0 = now_us();
    sink += local[lpages[i] * PS + 7];
    lat_local[i] = now_us() - t0;
  }
  (void)sink;
  report("read", lat_read, samples);
  report("fault", lat_fault, samples);
  report("local", lat_local, samples);
  netmem_unmap((void *)m);
  local_teardown(local, lth);
  free(rpages);
  free(fpages);
  free(lpages);

  /* Scan with read-ahead and bulk read alternate, SCAN_ROUNDS times, best of
   * each: the machine's noise hits both alike. */
  uint64_t s1 = 0, s2 = 0, s3 = 0;
  double best_scan = 0, best_bulk = 0;
  uint8_t *buf = malloc(64u << 20);
  memset(buf, 0, 64u << 20);
  for (size_t round = 0; round < scan_rounds; round++) {
    double mbps = scan(g, size, 0, &s1);
    if (mbps > best_scan) best_scan = mbps;
    double busy = 0;
    s3 = 0;
    for (size_t off = 0; off < size; off += 64u << 20) {
      size_t len = size - off < (64u << 20) ? size - off : 64u << 20;
      double t0 = now_us();
      if (netmem_read(nm, g + off, buf, len)) return 1;
      busy += now_us() - t0; /* the read only; the checksum below is not timed */
      for (size_t i = 0; i < len / 8; i++) s3 += ((uint64_t *)buf)[i];
    }
    mbps = (double)size / busy;
    if (mbps > best_bulk) best_bulk = mbps;
  }
  printf("scan_ra_mbps %.1f\n", best_scan);
  printf("bulk_mbps %.1f\n", best_bulk);
  printf("scan_1_mbps %.1f\n", scan(g, size, NETMEM_MAP_NOREADAHEAD, &s2));
  printf("sums_agree %d\n", s1 == s2 && s2 == s3);
  struct netmem_map_stats st;
  netmem_map_get_stats(&st);
  printf("fetches %" PRIu64 "\npages_fetched %" PRIu64 "\n", st.fetches, st.pages_fetched);
  netmem_close(nm);
  netmem_map_shutdown();
  return 0;
}
