/*
 * netmem_preload.c - libnetmem-preload.so, the LD_PRELOAD shim netmem-run puts
 * into an unmodified program: before main() it maps NETMEM_MAP ("GLOBAL:SIZE",
 * SIZE may end in K/M/G; or several "GLOBAL:SIZE,GLOBAL:SIZE,..." back to back,
 * e.g. a segment's extents) with netmem_map_extents (layout and settings from
 * the environment, see netmem.h), one range at the virtual address equal to
 * GLOBAL unless NETMEM_MAP_ANYWHERE=1, and tells the program where in
 * NETMEM_ADDR (0x hex) and NETMEM_SIZE (bytes, the total). At exit() the mapping is written back; a failed
 * write-back is logged and turns the exit status into 75. A mapping that
 * cannot be made ends the process with status 127 before main() runs.
 * NETMEM_MAP is removed from the environment so children do not map again.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/numparse.h"
#include "netmem.h"

static void *mapped;

#define MAX_EXTENTS 256

__attribute__((constructor)) static void netmem_preload_init(void) {
  const char *spec = getenv("NETMEM_MAP");
  if (!spec || !*spec) return;
  static struct netmem_extent ext[MAX_EXTENTS];
  size_t n = 0;
  uint64_t total = 0;
  char *copy = strdup(spec), *save = NULL;
  for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
    char *colon = strchr(tok, ':');
    uint64_t global, size;
    if (n == MAX_EXTENTS || !colon || (*colon = 0, amc_parse_u64(tok, AMC_NUM_SUFFIX, &global)) ||
        amc_parse_u64(colon + 1, AMC_NUM_SUFFIX, &size) || !size) {
      fprintf(stderr, "netmem-run: NETMEM_MAP=%s: want GLOBAL:SIZE[,GLOBAL:SIZE...]\n", spec);
      _exit(127);
    }
    ext[n++] = (struct netmem_extent){global, (size_t)size};
    total += size;
  }
  free(copy);
  if (!n) {
    fprintf(stderr, "netmem-run: NETMEM_MAP is empty\n");
    _exit(127);
  }
  const char *anywhere = getenv("NETMEM_MAP_ANYWHERE");
  int flags = (anywhere && !strcmp(anywhere, "1")) || n > 1 ? 0 : NETMEM_MAP_FIXED;
  mapped = netmem_map_extents(ext, n, flags);
  if (!mapped) {
    int e = errno;
    fprintf(stderr, "netmem-run: cannot map %s: %s%s\n", spec, strerror(e),
            e == EEXIST ? " (the address is taken; try NETMEM_MAP_ANYWHERE=1)" : "");
    _exit(127);
  }
  char v[32];
  snprintf(v, sizeof v, "%p", mapped);
  setenv("NETMEM_ADDR", v, 1);
  snprintf(v, sizeof v, "%" PRIu64, total);
  setenv("NETMEM_SIZE", v, 1);
  unsetenv("NETMEM_MAP");
}

__attribute__((destructor)) static void netmem_preload_fini(void) {
  if (!mapped) return;
  int rc = netmem_unmap(mapped);
  mapped = NULL;
  netmem_map_shutdown();
  if (rc) {
    fprintf(stderr, "netmem-run: write-back at exit failed: %s\n", strerror(-rc));
    _exit(75);
  }
}
