/*
 * netmem_map_test.c - netmem_map against running page servers; driven by
 * test/integration/netmem-map*.test.ts. The layout and settings come from the
 * environment (NETMEM_ROUTES or NETMEM_ROUTES_FILE, NETMEM_TIMEOUT_MS, ...).
 *
 *   netmem_map_test basic GLOBAL SIZE
 *     GLOBAL..+SIZE (>= 4 MiB, owned, free to overwrite): checks faults,
 *     read-ahead, write-back on sync/unmap/flusher, word-exact diffs, unmapped
 *     addresses. Prints `ok <check>` / `FAIL <check>: why`; exit 0 iff all ok.
 *   netmem_map_test counter GLOBAL N
 *     Maps one page at GLOBAL: the lock word at +0, a u64 counter at +64; N
 *     times netmem_lock, counter += 1 (a plain load and store), netmem_unlock.
 *     Prints `done N`.
 *   netmem_map_test put GLOBAL FILE [mapped]
 *     Writes FILE's bytes at GLOBAL: with netmem_write, or with `mapped`
 *     through a mapping (memcpy into it, then netmem_unmap writes it back).
 *     Prints `put N`.
 *   netmem_map_test hold-lock GLOBAL
 *     Maps one page at GLOBAL, netmem_lock on its first word (prints `locked`
 *     or `lock error NAME`), prints `ready`, waits for a line on stdin, then
 *     unlocks (prints `unlocked` or `unlock error NAME`).
 *   netmem_map_test stress GLOBAL SIZE
 *     4 threads increment interleaved words of every page of the mapping
 *     (false sharing on purpose) while the flusher writes back (run it with a
 *     small NETMEM_FLUSH_MS); then netmem_sync and a compare of the owner's
 *     bytes with the mapping's and with the expected counts. Prints `ok stress`
 *     or `FAIL stress: why`.
 *   netmem_map_test peek GLOBAL
 *     Prints `u64 N`, the word at GLOBAL read with netmem_read.
 *   netmem_map_test wait-scan GLOBAL SIZE
 *     Maps without read-ahead, touches the first page, prints `ready`, waits
 *     for a line on stdin, then reads every page in order, printing
 *     `page I` every 64 pages. An owner that goes away ends it with SIGBUS.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "../netmem.h"

#include "check.h"

static struct netmem *side; /* a plain client: what other nodes see */

static int open_side(void) {
  /* The same layout as the mapping, from the same environment. */
  const char *text = getenv("NETMEM_ROUTES");
  if (!text) {
    fprintf(stderr, "basic needs NETMEM_ROUTES\n");
    return -EINVAL;
  }
  struct netmem_route routes[16];
  char hosts[16][300];
  size_t n = 0;
  char *copy = strdup(text), *save = NULL;
  for (char *tok = strtok_r(copy, ", \n", &save); tok && n < 16; tok = strtok_r(NULL, ", \n", &save))
    if (netmem_parse_route(tok, &routes[n], hosts[n], sizeof hosts[n]) == 0) n++;
  free(copy);
  int rc = netmem_open(routes, n, &side);
  const char *cert = getenv("NETMEM_TLS_CERT"), *key = getenv("NETMEM_TLS_KEY"),
             *ca = getenv("NETMEM_TLS_CA");
  if (!rc && cert && key && ca) rc = netmem_set_tls(side, cert, key, ca);
  return rc;
}

static void fill(uint8_t *p, size_t n, uint32_t seed) {
  uint32_t x = seed ? seed : 1;
  for (size_t i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    p[i] = (uint8_t)x;
  }
}

static int basic(uint64_t g, size_t size) {
  int rc = netmem_map_init_env();
  CHECK("init", rc == 0, "netmem_map_init_env: %s", strerror(-rc));
  if (rc) return 1;
  rc = open_side();
  if (rc) return 1;
  uint8_t *want = malloc(size), *got = malloc(size);
  fill(want, size, 7);
  rc = netmem_write(side, g, want, size);
  CHECK("seed", rc == 0, "netmem_write: %s", strerror(-rc));

  struct netmem_map_stats s0, s1;
  netmem_map_get_stats(&s0);
  uint8_t *p = netmem_map(g, size, 0);
  CHECK("map", p != NULL, "netmem_map: %s", strerror(errno));
  if (!p) return 1;
  CHECK("global-addr", netmem_global_addr(p + 4097) == g + 4097, "netmem_global_addr");
  /* random single-page touches first: no read-ahead */
  CHECK("random-touch", p[size - 4096 + 5] == want[size - 4096 + 5] && p[12345] == want[12345],
        "bytes differ");
  netmem_map_get_stats(&s1);
  CHECK("one-page-per-random-fault", s1.pages_fetched - s0.pages_fetched == 2,
        "%" PRIu64 " pages fetched", s1.pages_fetched - s0.pages_fetched);
  CHECK("whole-region", memcmp(p, want, size) == 0, "mapped bytes differ from the written ones");
  netmem_map_get_stats(&s0);
  CHECK("read-ahead", s0.fetches - s1.fetches < (size / 4096) / 4,
        "%" PRIu64 " fetches for %zu pages", s0.fetches - s1.fetches, size / 4096);

  /* writes: a few bytes in one page, a whole page, a span of pages */
  p[100] = 0xAB;
  memset(p + 8192, 0x5A, 4096);
  fill(p + 65536, 3 * 4096 + 17, 99);
  memcpy(want + 100, p + 100, 1);
  memcpy(want + 8192, p + 8192, 4096);
  memcpy(want + 65536, p + 65536, 3 * 4096 + 17);
  rc = netmem_sync(p, 0);
  CHECK("sync", rc == 0, "netmem_sync: %s", strerror(-rc));
  netmem_read(side, g, got, size);
  CHECK("sync-visible", memcmp(got, want, size) == 0, "the owner does not have the writes");

  /* word-exact diffs: a word changed by another node next to ours survives */
  uint64_t other = 0x1122334455667788ull;
  p[200 * 8] = 1; /* dirty the page, word 200 */
  netmem_write(side, g + 201 * 8, &other, 8);
  rc = netmem_sync(p, 4096);
  uint64_t back = 0;
  netmem_read(side, g + 201 * 8, &back, 8);
  CHECK("word-diff", rc == 0 && back == other, "the neighbour word became %#" PRIx64, back);
  want[200 * 8] = 1;
  memcpy(want + 201 * 8, &other, 8);

  /* the background flusher */
  p[300000] = 0x77;
  want[300000] = 0x77;
  uint8_t b = 0;
  for (int i = 0; i < 100 && b != 0x77; i++) {
    struct timespec ts = {0, 50 * 1000 * 1000};
    nanosleep(&ts, NULL);
    netmem_read(side, g + 300000, &b, 1);
  }
  CHECK("flusher", b == 0x77, "not written back within 5 s");

  /* lock: drops cached pages so another node's write becomes visible */
  uint64_t *word = (uint64_t *)(p + 4096 * 40);
  uint8_t fresh = 0x42;
  netmem_write(side, g + size - 1, &fresh, 1);
  CHECK("stale-before-lock", p[size - 1] == want[size - 1], "cached page changed by itself");
  rc = netmem_lock(word);
  CHECK("lock", rc == 0, "netmem_lock: %s", strerror(-rc));
  CHECK("fresh-after-lock", p[size - 1] == 0x42, "still the old byte after netmem_lock");
  want[size - 1] = 0x42;
  uint64_t lw = 0;
  netmem_read(side, g + 4096 * 40, &lw, 8);
  CHECK("lock-word", (lw >> 32) != 0 && (uint32_t)lw > (uint32_t)time(NULL),
        "word %#" PRIx64, lw);
  const char *ttl_env = getenv("NETMEM_LOCK_TTL_S");
  if (ttl_env) { /* held past its ttl: the flusher renews the lease */
    long ttl = strtol(ttl_env, NULL, 10);
    uint64_t before = lw;
    struct timespec ts = {ttl + ttl / 2, 0};
    nanosleep(&ts, NULL);
    netmem_read(side, g + 4096 * 40, &lw, 8);
    CHECK("lease-renewed", lw >> 32 == before >> 32 && (uint32_t)lw > (uint32_t)before &&
                               (uint32_t)lw > (uint32_t)time(NULL),
          "word %#" PRIx64 " (was %#" PRIx64 ")", lw, before);
  }
  p[4096 * 40 + 64] = 9; /* same page as the lock word */
  want[4096 * 40 + 64] = 9;
  rc = netmem_unlock(word);
  CHECK("unlock", rc == 0, "netmem_unlock: %s", strerror(-rc));
  netmem_read(side, g + 4096 * 40, &lw, 8);
  uint8_t nine = 0;
  netmem_read(side, g + 4096 * 40 + 64, &nine, 1);
  CHECK("unlock-wrote-back", lw == 0 && nine == 9, "word %#" PRIx64 ", byte %u", lw, nine);
  memset(want + 4096 * 40, 0, 8); /* the lock word is free again */
  CHECK("unlock-again", netmem_unlock(word) == -ENOLCK, "a second unlock");

  p[size / 2] ^= 0xFF;
  want[size / 2] ^= 0xFF;
  rc = netmem_unmap(p);
  CHECK("unmap", rc == 0, "netmem_unmap: %s", strerror(-rc));
  netmem_read(side, g, got, size);
  size_t diff = 0;
  while (diff < size && got[diff] == want[diff]) diff++;
  CHECK("unmap-wrote-back", diff == size, "the owner differs at +%zu (%u, want %u)", diff,
        diff < size ? got[diff] : 0, diff < size ? want[diff] : 0);

  /* two extents back to back, in reverse global order */
  struct netmem_extent two[2] = {{g + (4u << 20), 1u << 20}, {g, 1u << 20}};
  uint8_t *x = netmem_map_extents(two, 2, 0);
  CHECK("extents-map", x != NULL, "netmem_map_extents: %s", strerror(errno));
  if (x) {
    CHECK("extents-read", memcmp(x, want + (4u << 20), 1u << 20) == 0 &&
                              memcmp(x + (1u << 20), want, 1u << 20) == 0,
          "the two extents do not read back in order");
    CHECK("extents-global", netmem_global_addr(x + (1u << 20) + 5) == g + 5 &&
                                netmem_global_addr(x + 7) == g + (4u << 20) + 7,
          "netmem_global_addr across extents");
    x[10] = 0x31;
    x[(1u << 20) + 10] = 0x32;
    want[(4u << 20) + 10] = 0x31;
    want[10] = 0x32;
    rc = netmem_unmap(x);
    uint8_t b1 = 0, b2 = 0;
    netmem_read(side, g + (4u << 20) + 10, &b1, 1);
    netmem_read(side, g + 10, &b2, 1);
    CHECK("extents-write-back", rc == 0 && b1 == 0x31 && b2 == 0x32, "rc %d, bytes %#x %#x", rc,
          b1, b2);
  }

  /* unmapped */
  errno = 0;
  void *none = netmem_map(0x1000, 4096, 0);
  CHECK("unmapped", none == NULL && errno == EFAULT, "netmem_map(0x1000): %s", strerror(errno));
  void *fixed = netmem_map(g, 4096, NETMEM_MAP_FIXED);
  CHECK("fixed", fixed == (void *)(uintptr_t)g, "NETMEM_MAP_FIXED gave %p", fixed);
  if (fixed) CHECK("fixed-read", ((uint8_t *)fixed)[100] == want[100], "byte differs");
  netmem_map_shutdown();
  netmem_close(side);
  return failures ? 1 : 0;
}

static int counter(uint64_t g, long n) {
  uint8_t *p = netmem_map(g, 4096, 0);
  if (!p) {
    fprintf(stderr, "netmem_map: %s\n", strerror(errno));
    return 1;
  }
  uint64_t *word = (uint64_t *)p;
  volatile uint64_t *count = (uint64_t *)(p + 64);
  for (long i = 0; i < n; i++) {
    int rc = netmem_lock(word);
    if (rc) {
      fprintf(stderr, "netmem_lock: %s\n", strerror(-rc));
      return 1;
    }
    *count = *count + 1;
    rc = netmem_unlock(word);
    if (rc) {
      fprintf(stderr, "netmem_unlock: %s\n", strerror(-rc));
      return 1;
    }
  }
  int rc = netmem_unmap(p);
  netmem_map_shutdown();
  printf("done %ld\n", n);
  return rc ? 1 : 0;
}

struct stress_arg {
  volatile uint64_t *words;
  size_t nwords;
  int id, rounds;
};

static void *stress_thread(void *arg) {
  struct stress_arg *a = arg;
  for (int r = 0; r < a->rounds; r++)
    for (size_t w = (size_t)a->id; w < a->nwords; w += 4) a->words[w] += 1;
  return NULL;
}

static int stress(uint64_t g, size_t size) {
  int rc = netmem_map_init_env();
  if (!rc) rc = open_side();
  if (rc) return 1;
  uint8_t *zero = calloc(1, size);
  netmem_write(side, g, zero, size);
  uint64_t *words = netmem_map(g, size, 0);
  if (!words) return 1;
  pthread_t th[4];
  struct stress_arg args[4];
  for (int i = 0; i < 4; i++) {
    args[i] = (struct stress_arg){words, size / 8, i, 20};
    pthread_create(&th[i], NULL, stress_thread, &args[i]);
  }
  for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
  rc = netmem_sync(words, 0);
  uint64_t *remote = malloc(size);
  netmem_read(side, g, remote, size);
  size_t bad = 0;
  for (size_t w = 0; w < size / 8; w++)
    if (remote[w] != 20 || words[w] != 20) bad++;
  struct netmem_map_stats st;
  netmem_map_get_stats(&st);
  CHECK("stress", rc == 0 && bad == 0, "sync %d, %zu words differ", rc, bad);
  printf("info stress wp_faults %" PRIu64 " pages_written_back %" PRIu64 "\n", st.wp_faults,
         st.pages_written_back);
  netmem_unmap(words);
  netmem_map_shutdown();
  return failures ? 1 : 0;
}

static int hold_lock(uint64_t g) {
  uint8_t *p = netmem_map(g, 4096, 0);
  if (!p) {
    fprintf(stderr, "netmem_map: %s\n", strerror(errno));
    return 1;
  }
  int rc = netmem_lock(p);
  if (rc) printf("lock error %s\n", rc == -ETIMEDOUT ? "ETIMEDOUT" : strerror(-rc));
  else printf("locked\n");
  printf("ready\n");
  fflush(stdout);
  char line[16];
  if (!fgets(line, sizeof line, stdin)) return 1;
  if (!rc) {
    rc = netmem_unlock(p);
    if (rc) printf("unlock error %s\n", rc == -ENOLCK ? "ENOLCK" : strerror(-rc));
    else printf("unlocked\n");
  }
  netmem_unmap(p);
  netmem_map_shutdown();
  return rc ? 1 : 0;
}

static int wait_scan(uint64_t g, size_t size) {
  volatile uint8_t *p = netmem_map(g, size, NETMEM_MAP_NOREADAHEAD);
  if (!p) {
    fprintf(stderr, "netmem_map: %s\n", strerror(errno));
    return 1;
  }
  unsigned sum = p[0];
  printf("ready\n");
  fflush(stdout);
  char line[16];
  if (!fgets(line, sizeof line, stdin)) return 1;
  for (size_t i = 1; i < size / 4096; i++) {
    sum += p[i * 4096];
    if (i % 64 == 0) {
      printf("page %zu\n", i);
      fflush(stdout);
    }
  }
  printf("finished %u\n", sum);
  return 0;
}

static int put(uint64_t g, const char *file, int mapped) {
  FILE *f = fopen(file, "rb");
  if (!f) {
    perror(file);
    return 1;
  }
  fseek(f, 0, SEEK_END);
  size_t n = (size_t)ftell(f);
  fseek(f, 0, SEEK_SET);
  uint8_t *buf = malloc(n);
  if (!buf || fread(buf, 1, n, f) != n) {
    perror("read");
    return 1;
  }
  fclose(f);
  int rc = netmem_map_init_env();
  if (!rc && mapped) {
    uint8_t *p = netmem_map(g, n, 0);
    if (!p) {
      fprintf(stderr, "netmem_map: %s\n", strerror(errno));
      return 1;
    }
    memcpy(p, buf, n);
    rc = netmem_unmap(p);
  } else if (!rc) {
    rc = open_side();
    if (!rc) rc = netmem_write(side, g, buf, n);
  }
  if (rc) {
    fprintf(stderr, "put: %s\n", strerror(-rc));
    return 1;
  }
  printf("put %zu\n", n);
  return 0;
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc >= 4 && !strcmp(argv[1], "basic"))
    return basic(strtoull(argv[2], NULL, 0), strtoull(argv[3], NULL, 0));
  if (argc >= 4 && !strcmp(argv[1], "counter"))
    return counter(strtoull(argv[2], NULL, 0), strtol(argv[3], NULL, 0));
  if (argc >= 4 && !strcmp(argv[1], "put"))
    return put(strtoull(argv[2], NULL, 0), argv[3], argc >= 5 && !strcmp(argv[4], "mapped"));
  if (argc >= 4 && !strcmp(argv[1], "stress"))
    return stress(strtoull(argv[2], NULL, 0), strtoull(argv[3], NULL, 0));
  if (argc >= 3 && !strcmp(argv[1], "hold-lock")) return hold_lock(strtoull(argv[2], NULL, 0));
  if (argc >= 3 && !strcmp(argv[1], "peek")) {
    uint64_t v = 0;
    int rc = open_side();
    if (!rc) rc = netmem_read(side, strtoull(argv[2], NULL, 0), &v, 8);
    if (rc) {
      fprintf(stderr, "peek: %s\n", strerror(-rc));
      return 1;
    }
    printf("u64 %" PRIu64 "\n", v);
    return 0;
  }
  if (argc >= 4 && !strcmp(argv[1], "wait-scan"))
    return wait_scan(strtoull(argv[2], NULL, 0), strtoull(argv[3], NULL, 0));
  fprintf(stderr, "usage: see the comment at the top of netmem_map_test.c\n");
  return 2;
}
