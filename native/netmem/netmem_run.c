/*
 * netmem_run.c - netmem-run: run an unmodified, dynamically linked program with
 * a piece of the network memory space mapped into it (libnetmem-preload.so).
 *
 *   netmem-run (--route START:SIZE=NODE@HOST:PORT ... | --routes-file FILE)
 *              --map GLOBAL:SIZE[,GLOBAL:SIZE...] [--anywhere] [--readahead-kb N]
 *              [--timeout-ms N] [--flush-ms N] [--lock-ttl-s N]
 *              [--tls-cert F --tls-key F --tls-ca F] -- PROGRAM [ARG...]
 *
 * The program finds the mapping in NETMEM_ADDR (0x hex) and NETMEM_SIZE.
 * Several ranges (a segment's extents, in order) are mapped back to back.
 * Exit status: the program's; 127 when the mapping cannot be made; 2 on a
 * usage error.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(void) {
  fprintf(stderr,
          "usage: netmem-run (--route START:SIZE=NODE@HOST:PORT ... | --routes-file FILE)\n"
          "                  --map GLOBAL:SIZE[,GLOBAL:SIZE...] [--anywhere] [--readahead-kb N]\n"
          "                  [--timeout-ms N] [--flush-ms N] [--lock-ttl-s N]\n"
          "                  [--tls-cert F --tls-key F --tls-ca F] -- PROGRAM [ARG...]\n");
  exit(2);
}

static char *append(char *acc, const char *sep, const char *s) {
  size_t a = acc ? strlen(acc) : 0;
  char *out = realloc(acc, a + strlen(sep) + strlen(s) + 1);
  if (!out) {
    perror("netmem-run");
    exit(2);
  }
  if (a) strcat(out, sep);
  else out[0] = 0;
  strcat(out, s);
  return out;
}

int main(int argc, char **argv) {
  char *routes = NULL;
  const char *map = NULL;
  int i = 1;
  for (; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--")) {
      i++;
      break;
    }
    if (!strcmp(a, "--anywhere")) {
      setenv("NETMEM_MAP_ANYWHERE", "1", 1);
      continue;
    }
    if (i + 1 >= argc) usage();
    const char *v = argv[++i];
    if (!strcmp(a, "--route")) routes = append(routes, ",", v);
    else if (!strcmp(a, "--routes-file")) setenv("NETMEM_ROUTES_FILE", v, 1);
    else if (!strcmp(a, "--map")) map = v;
    else if (!strcmp(a, "--readahead-kb")) setenv("NETMEM_READAHEAD_KB", v, 1);
    else if (!strcmp(a, "--timeout-ms")) setenv("NETMEM_TIMEOUT_MS", v, 1);
    else if (!strcmp(a, "--flush-ms")) setenv("NETMEM_FLUSH_MS", v, 1);
    else if (!strcmp(a, "--lock-ttl-s")) setenv("NETMEM_LOCK_TTL_S", v, 1);
    else if (!strcmp(a, "--tls-cert")) setenv("NETMEM_TLS_CERT", v, 1);
    else if (!strcmp(a, "--tls-key")) setenv("NETMEM_TLS_KEY", v, 1);
    else if (!strcmp(a, "--tls-ca")) setenv("NETMEM_TLS_CA", v, 1);
    else usage();
  }
  if (i >= argc || !map || (!routes && !getenv("NETMEM_ROUTES_FILE") && !getenv("NETMEM_ROUTES")))
    usage();
  if (routes) setenv("NETMEM_ROUTES", routes, 1);
  setenv("NETMEM_MAP", map, 1);
  char self[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) {
    perror("netmem-run: /proc/self/exe");
    return 2;
  }
  self[n] = 0;
  char *slash = strrchr(self, '/');
  *slash = 0;
  char *preload = append(NULL, "", self);
  preload = append(preload, "", "/libnetmem-preload.so");
  if (access(preload, R_OK)) {
    fprintf(stderr, "netmem-run: %s: %s\n", preload, strerror(errno));
    return 2;
  }
  const char *old = getenv("LD_PRELOAD");
  if (old && *old) preload = append(preload, ":", old);
  setenv("LD_PRELOAD", preload, 1);
  execvp(argv[i], argv + i);
  fprintf(stderr, "netmem-run: %s: %s\n", argv[i], strerror(errno));
  return 127;
}
