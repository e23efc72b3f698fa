/*
 * route_test.c - unit tests of netmem's route spec (netmem_parse_route,
 * netmem_open): START:SIZE=NODE@HOST:PORT, the owner's node name required and
 * checked, nothing else accepted.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "../netmem/netmem.h"

#include "check.h"

int main(void) {
  struct netmem_route r;
  char host[300];
  CHECK(netmem_parse_route("0x40000000:16M=node-a@10.0.0.7:7070", &r, host, sizeof host) == 0);
  CHECK(r.start == 0x40000000 && r.size == 16u << 20 && r.port == 7070);
  CHECK(strcmp(r.host, "10.0.0.7") == 0 && strcmp(r.node, "node-a") == 0);
  CHECK(netmem_parse_route("4096:4096=b@[::1]:1", &r, host, sizeof host) == 0);
  CHECK(strcmp(r.host, "::1") == 0 && strcmp(r.node, "b") == 0);
  /* the old format (no owner) and every malformed owner are refused */
  CHECK(netmem_parse_route("0x40000000:16M@10.0.0.7:7070", &r, host, sizeof host) == -EINVAL);
  CHECK(netmem_parse_route("0x40000000:16M=@10.0.0.7:7070", &r, host, sizeof host) == -EINVAL);
  CHECK(netmem_parse_route("0x40000000:16M=Node@10.0.0.7:7070", &r, host, sizeof host) == -EINVAL);
  CHECK(netmem_parse_route("0x40000000:16M=a-@10.0.0.7:7070", &r, host, sizeof host) == -EINVAL);
  CHECK(netmem_parse_route("0x40000000:16M=node:a@10.0.0.7:7070", &r, host, sizeof host) ==
        -EINVAL);
  char longname[100];
  memset(longname, 'a', 64);
  longname[64] = '\0';
  char spec[200];
  snprintf(spec, sizeof spec, "0:4096=%s@h:1", longname);
  CHECK(netmem_parse_route(spec, &r, host, sizeof host) == -EINVAL);
  CHECK(netmem_parse_route("0x40000000=a:16M@10.0.0.7:7070", &r, host, sizeof host) == -EINVAL);
  CHECK(netmem_parse_route("0x40000000:16M=a@10.0.0.7", &r, host, sizeof host) == -EINVAL);
  /* netmem_open wants a valid owner on every route */
  struct netmem *nm = NULL;
  struct netmem_route ok = {0x40000000, 4096, "127.0.0.1", 1, "a"};
  CHECK(netmem_open(&ok, 1, &nm) == 0);
  netmem_close(nm);
  struct netmem_route none = {0x40000000, 4096, "127.0.0.1", 1, ""};
  CHECK(netmem_open(&none, 1, &nm) == -EINVAL);
  struct netmem_route bad = {0x40000000, 4096, "127.0.0.1", 1, "A"};
  CHECK(netmem_open(&bad, 1, &nm) == -EINVAL);
  if (failures) {
    fprintf(stderr, "route_test: %d failure(s)\n", failures);
    return 1;
  }
  printf("route_test: ok\n");
  return 0;
}
