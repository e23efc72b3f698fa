/*
 * netmem_tool.c - manual access to network memory through libnetmem.
 *
 *   netmem-tool [--timeout-ms N] [--tls-cert F --tls-key F --tls-ca F]
 *               --route START:SIZE=NODE@HOST:PORT ... read ADDR LEN
 *   netmem-tool ... write ADDR HEX
 *   netmem-tool ... fetch-add ADDR DELTA
 *   netmem-tool ... cas ADDR EXPECTED DESIRED
 * read prints hex on stdout; fetch-add and cas print the old value.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "netmem.h"

#define MAX_ROUTES 64

static int hexval(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  c = tolower(c);
  return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static int die(int rc, const char *what) {
  /* A refused page server (e.g. another node's certificate): say whose. */
  if (rc == -EACCES)
    fprintf(stderr, "netmem-tool: %s: %s: %s\n", what, strerror(-rc), netmem_tls_error());
  else
    fprintf(stderr, "netmem-tool: %s: %s\n", what, strerror(-rc));
  return 1;
}

int main(int argc, char **argv) {
  static struct netmem_route routes[MAX_ROUTES];
  static char hosts[MAX_ROUTES][256];
  size_t n = 0;
  int timeout = NETMEM_DEFAULT_TIMEOUT_MS, i = 1;
  const char *cert = NULL, *key = NULL, *ca = NULL;
  for (; i < argc; i++) {
    if (!strcmp(argv[i], "--route") && i + 1 < argc && n < MAX_ROUTES) {
      if (netmem_parse_route(argv[++i], &routes[n], hosts[n], sizeof hosts[0]))
        return fprintf(stderr, "netmem-tool: bad route %s\n", argv[i]), 2;
      n++;
    } else if (!strcmp(argv[i], "--timeout-ms") && i + 1 < argc) {
      timeout = atoi(argv[++i]);
    } else if (!strcmp(argv[i], "--tls-cert") && i + 1 < argc) {
      cert = argv[++i];
    } else if (!strcmp(argv[i], "--tls-key") && i + 1 < argc) {
      key = argv[++i];
    } else if (!strcmp(argv[i], "--tls-ca") && i + 1 < argc) {
      ca = argv[++i];
    } else {
      break;
    }
  }
  if (argc - i < 3 || !n) {
    fprintf(stderr, "usage: netmem-tool [--timeout-ms N] [--tls-cert F --tls-key F --tls-ca F]\n"
                    "         --route START:SIZE=NODE@HOST:PORT ...\n"
                    "         read ADDR LEN | write ADDR HEX | fetch-add ADDR DELTA |\n"
                    "         cas ADDR EXPECTED DESIRED\n");
    return 2;
  }
  struct netmem *nm;
  int rc = netmem_open(routes, n, &nm);
  if (rc) return die(rc, "layout");
  if ((rc = netmem_set_timeout_ms(nm, timeout))) return die(rc, "--timeout-ms");
  if ((cert || key || ca) && (rc = netmem_set_tls(nm, cert, key, ca))) {
    fprintf(stderr, "netmem-tool: TLS: %s\n", rc == -EINVAL ? netmem_tls_error() : strerror(-rc));
    return 1;
  }
  const char *cmd = argv[i];
  uint64_t addr = strtoull(argv[i + 1], NULL, 0);
  int status = 0;
  if (!strcmp(cmd, "read")) {
    size_t len = strtoull(argv[i + 2], NULL, 0);
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf) return die(-ENOMEM, "read");
    rc = netmem_read(nm, addr, buf, len);
    if (rc) status = die(rc, "read");
    else {
      for (size_t k = 0; k < len; k++) printf("%02x", buf[k]);
      printf("\n");
    }
    free(buf);
  } else if (!strcmp(cmd, "write")) {
    const char *hex = argv[i + 2];
    size_t hl = strlen(hex);
    if (hl % 2) return fprintf(stderr, "netmem-tool: odd hex length\n"), 2;
    uint8_t *buf = malloc(hl / 2 + 1);
    if (!buf) return die(-ENOMEM, "write");
    for (size_t k = 0; k < hl / 2; k++) {
      int h = hexval(hex[2 * k]), l = hexval(hex[2 * k + 1]);
      if (h < 0 || l < 0) return fprintf(stderr, "netmem-tool: bad hex\n"), 2;
      buf[k] = (uint8_t)(h << 4 | l);
    }
    rc = netmem_write(nm, addr, buf, hl / 2);
    if (rc) status = die(rc, "write");
    free(buf);
  } else if (!strcmp(cmd, "fetch-add")) {
    uint64_t old;
    rc = netmem_fetch_add64(nm, addr, strtoull(argv[i + 2], NULL, 0), &old);
    if (rc) status = die(rc, "fetch-add");
    else printf("%" PRIu64 "\n", old);
  } else if (!strcmp(cmd, "cas") && argc - i >= 4) {
    uint64_t old, exp = strtoull(argv[i + 2], NULL, 0);
    rc = netmem_cas64(nm, addr, exp, strtoull(argv[i + 3], NULL, 0), &old);
    if (rc) status = die(rc, "cas");
    else printf("%" PRIu64 " %s\n", old, old == exp ? "swapped" : "not-swapped");
  } else {
    fprintf(stderr, "netmem-tool: unknown command %s\n", cmd);
    status = 2;
  }
  netmem_close(nm);
  return status;
}
