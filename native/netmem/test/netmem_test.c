/*
 * netmem_test.c - exercises libnetmem against running page servers; driven by
 * test/integration/netmem-basic.test.ts.
 *
 *   netmem_test [--timeout-ms N] --route START:SIZE=NODE@HOST:PORT ... basic
 *     The routes must be adjacent and cover at least 48 MiB from the lowest
 *     start. Prints `ok <check>` per passed check, `FAIL <check>: why` otherwise;
 *     exit 0 iff all passed.
 *   netmem_test [--timeout-ms N] --route ... wait-read ADDR LEN [ADDR LEN ...]
 *     Connects to every route (a read of its first byte), prints `ready`, waits
 *     for a line on stdin, then tries each read and prints
 *     `read ADDR LEN ok|error NAME (-E) after MS ms`.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../netmem.h"

#define MAX_ROUTES 16
static struct netmem_route routes[MAX_ROUTES];
static char hosts[MAX_ROUTES][256];
static size_t nroutes;
static int timeout_ms = 2000;
#include "check.h"

static const char *errname(int rc) {
  switch (-rc) {
  case 0: return "OK";
  case EFAULT: return "EFAULT";
  case EINVAL: return "EINVAL";
  case ECONNRESET: return "ECONNRESET";
  case ECONNREFUSED: return "ECONNREFUSED";
  case ETIMEDOUT: return "ETIMEDOUT";
  case EPROTO: return "EPROTO";
  default: return "other";
  }
}

static int open_nm(struct netmem **nm) {
  int rc = netmem_open(routes, nroutes, nm);
  if (!rc) rc = netmem_set_timeout_ms(*nm, timeout_ms);
  return rc;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

static void fill(uint8_t *p, size_t n) {
  for (size_t i = 0; i < n; i++) p[i] = (uint8_t)(rnd() >> 24);
}

struct adder {
  uint64_t counter;
  int n;
  int rc;
  uint8_t *seen; /* 10,000 flags shared; each old value must appear once */
};

static void *add_thread(void *arg) {
  struct adder *a = arg;
  struct netmem *nm;
  a->rc = open_nm(&nm);
  if (a->rc) return NULL;
  for (int i = 0; i < a->n && !a->rc; i++) {
    uint64_t old;
    a->rc = netmem_fetch_add64(nm, a->counter, 1, &old);
    if (!a->rc) {
      if (old >= 10000) a->rc = -ERANGE;
      else __atomic_fetch_add(&a->seen[old], 1, __ATOMIC_RELAXED);
    }
  }
  netmem_close(nm);
  return NULL;
}

static int basic(void) {
  uint64_t base = routes[0].start, span = 0;
  for (size_t i = 0; i < nroutes; i++)
    if (routes[i].start + routes[i].size - base > span) span = routes[i].start + routes[i].size - base;
  const size_t MiB = 1u << 20;
  if (span < 48 * MiB) {
    fprintf(stderr, "basic needs 48 MiB of adjacent routes\n");
    return 2;
  }
  struct netmem *nm;
  int rc = open_nm(&nm);
  if (rc) {
    printf("FAIL open: %s\n", errname(rc));
    return 1;
  }
  uint8_t *model = calloc(1, span), *buf = malloc(span);
  if (!model || !buf) return 1;
  /* The servers may hold data from an earlier run: the model starts as a copy. */
  rc = netmem_read(nm, base, model, span);
  CHECK("read-whole-space", !rc, "%s", errname(rc));

  /* 1. One 40 MiB write spanning all three ranges, one read back. */
  uint64_t off = 4 * MiB + 3;
  size_t len = 40 * MiB;
  fill(model + off, len);
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  rc = netmem_write(nm, base + off, model + off, len);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double wms = (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
  int rc2 = rc ? rc : netmem_read(nm, base + off, buf, len);
  clock_gettime(CLOCK_MONOTONIC, &t0);
  double rms = (t0.tv_sec - t1.tv_sec) * 1e3 + (t0.tv_nsec - t1.tv_nsec) / 1e6;
  CHECK("span-40MiB", !rc && !rc2 && !memcmp(buf, model + off, len), "write %s read %s cmp %d",
        errname(rc), errname(rc2), rc || rc2 ? -1 : memcmp(buf, model + off, len));
  printf("info 40MiB write %.1f ms, read %.1f ms\n", wms, rms);

  /* 2. Unaligned writes and reads across each boundary and at random places. */
  int bad = 0;
  char why[200] = "";
  for (size_t i = 1; i < nroutes && !bad; i++) {
    uint64_t b = routes[i].start - base;
    if (b >= span) continue;
    fill(model + b - 333, 1001);
    rc = netmem_write(nm, base + b - 333, model + b - 333, 1001);
    rc2 = rc ? rc : netmem_read(nm, base + b - 517, buf, 1030);
    if (rc || rc2 || memcmp(buf, model + b - 517, 1030)) {
      bad = 1;
      snprintf(why, sizeof why, "boundary 0x%" PRIx64 ": %s/%s", base + b, errname(rc), errname(rc2));
    }
  }
  for (int i = 0; i < 200 && !bad; i++) {
    size_t l = (size_t)(rnd() % (3 * MiB)) + 1;
    uint64_t a = rnd() % (span - l);
    if (rnd() & 1) {
      fill(model + a, l);
      rc = netmem_write(nm, base + a, model + a, l);
    } else {
      rc = netmem_read(nm, base + a, buf, l);
      if (!rc && memcmp(buf, model + a, l)) rc = -EILSEQ;
    }
    if (rc) {
      bad = 1;
      snprintf(why, sizeof why, "op %d at +0x%" PRIx64 " len %zu: %s", i, a, l, errname(rc));
    }
  }
  rc = netmem_read(nm, base, buf, span);
  if (!bad && (rc || memcmp(buf, model, span))) {
    bad = 1;
    snprintf(why, sizeof why, "whole-space read: %s", errname(rc));
  }
  CHECK("cross-boundary", !bad, "%s", why);

  /* 3. CAS64 on the last word of the first range. */
  uint64_t w = base + routes[0].size - 8, old = 0;
  uint64_t cur;
  memcpy(&cur, model + routes[0].size - 8, 8);
  cur = le64toh(cur);
  int a1 = netmem_cas64(nm, w, cur + 1, 42, &old);
  int okfail = !a1 && old == cur;
  int a2 = netmem_cas64(nm, w, cur, 42, &old);
  int okswap = !a2 && old == cur;
  uint64_t now = 0;
  int a3 = netmem_read(nm, w, &now, 8);
  CHECK("cas64", okfail && okswap && !a3 && le64toh(now) == 42, "%s %s %s now %" PRIu64,
        errname(a1), errname(a2), errname(a3), now);

  /* 4. 4 threads x 2500 FETCH_ADD64 on one word (start of the second range). */
  struct adder ad[4];
  pthread_t th[4];
  uint8_t *seen = calloc(10000, 1);
  uint64_t counter = routes[1].start;
  uint64_t zero = 0;
  rc = netmem_write(nm, counter, &zero, 8);
  for (int i = 0; i < 4; i++) {
    ad[i] = (struct adder){.counter = counter, .n = 2500, .seen = seen};
    pthread_create(&th[i], NULL, add_thread, &ad[i]);
  }
  for (int i = 0; i < 4; i++) {
    pthread_join(th[i], NULL);
    if (ad[i].rc && !rc) rc = ad[i].rc;
  }
  uint64_t total = 0;
  rc2 = netmem_read(nm, counter, &total, 8);
  int uniq = 1;
  for (int i = 0; i < 10000; i++) uniq &= seen[i] == 1;
  CHECK("fetch-add64", !rc && !rc2 && le64toh(total) == 10000 && uniq,
        "%s %s total %" PRIu64 " uniq %d", errname(rc), errname(rc2), le64toh(total), uniq);
  printf("info fetch-add64 total %" PRIu64 "\n", le64toh(total));

  /* 5. Unmapped addresses and bad arguments. */
  uint64_t end = base + span;
  int e1 = netmem_read(nm, end, buf, 1);
  int e2 = netmem_read(nm, end - 10, buf, 20);
  int e3 = base ? netmem_write(nm, base - 1, buf, 2) : -EFAULT;
  int e4 = netmem_fetch_add64(nm, end, 1, NULL);
  int e5 = netmem_fetch_add64(nm, base + 4, 1, NULL);
  int e6 = netmem_read(nm, UINT64_MAX - 3, buf, 16);
  CHECK("unmapped", e1 == -EFAULT && e2 == -EFAULT && e3 == -EFAULT && e4 == -EFAULT &&
                        e5 == -EINVAL && e6 == -EFAULT,
        "%s %s %s %s %s %s", errname(e1), errname(e2), errname(e3), errname(e4), errname(e5),
        errname(e6));
  /* The connection is still good after refused requests. */
  rc = netmem_read(nm, base, buf, 4096);
  CHECK("after-errors", !rc && !memcmp(buf, model, 4096), "%s", errname(rc));

  free(seen);
  free(model);
  free(buf);
  netmem_close(nm);
  return failures ? 1 : 0;
}

static int wait_read(int argc, char **argv) {
  struct netmem *nm;
  int rc = open_nm(&nm);
  if (rc) return 1;
  uint8_t b;
  for (size_t i = 0; i < nroutes; i++) {
    rc = netmem_read(nm, routes[i].start, &b, 1);
    if (rc) {
      printf("FAIL connect route %zu: %s\n", i, errname(rc));
      return 1;
    }
  }
  printf("ready\n");
  fflush(stdout);
  char line[64];
  if (!fgets(line, sizeof line, stdin)) return 1;
  int status = 0;
  for (int i = 0; i + 1 < argc; i += 2) {
    uint64_t addr = strtoull(argv[i], NULL, 0);
    size_t len = strtoull(argv[i + 1], NULL, 0);
    void *buf = malloc(len ? len : 1);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    rc = netmem_read(nm, addr, buf, len);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    if (rc) printf("read 0x%" PRIx64 " %zu error %s (%d) after %ld ms\n", addr, len, errname(rc), rc, ms);
    else printf("read 0x%" PRIx64 " %zu ok\n", addr, len);
    fflush(stdout);
    free(buf);
  }
  netmem_close(nm);
  return status;
}

int main(int argc, char **argv) {
  int i = 1;
  for (; i < argc; i++) {
    if (!strcmp(argv[i], "--route") && i + 1 < argc && nroutes < MAX_ROUTES) {
      if (netmem_parse_route(argv[++i], &routes[nroutes], hosts[nroutes], sizeof hosts[0])) {
        fprintf(stderr, "bad route %s\n", argv[i]);
        return 2;
      }
      nroutes++;
    } else if (!strcmp(argv[i], "--timeout-ms") && i + 1 < argc) {
      timeout_ms = atoi(argv[++i]);
    } else {
      break;
    }
  }
  if (i >= argc || !nroutes) {
    fprintf(stderr, "usage: netmem_test [--timeout-ms N] --route START:SIZE=NODE@HOST:PORT ... "
                    "basic | wait-read ADDR LEN ...\n");
    return 2;
  }
  if (!strcmp(argv[i], "basic")) return basic();
  if (!strcmp(argv[i], "wait-read")) return wait_read(argc - i - 1, argv + i + 1);
  fprintf(stderr, "unknown command %s\n", argv[i]);
  return 2;
}
