/*
 * map_settings.c - the mapper's settings: the defaults of struct
 * netmem_map_config, and the layout and settings from the environment
 * (NETMEM_ROUTES / NETMEM_ROUTES_FILE, NETMEM_TIMEOUT_MS, NETMEM_READAHEAD_KB,
 * NETMEM_FLUSH_MS, NETMEM_LOCK_TTL_S, NETMEM_LOCK_TIMEOUT_MS, NETMEM_TLS_*).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "map_internal.h"

#define DEFAULT_READAHEAD (8u << 20)
#define DEFAULT_FLUSH_MS 1000
#define DEFAULT_LOCK_TTL_S 30
#define DEFAULT_LOCK_TIMEOUT_MS 30000
#define MAX_READAHEAD_PAGES 16384 /* 64 MiB */

void nmm_settings_resolve(const struct netmem_map_config *cfg, struct netmem_map_config *out,
                          size_t *ra_pages) {
  struct netmem_map_config c = cfg ? *cfg : (struct netmem_map_config){0};
  if (c.timeout_ms <= 0) c.timeout_ms = NETMEM_DEFAULT_TIMEOUT_MS;
  if (c.readahead_bytes == 0) c.readahead_bytes = DEFAULT_READAHEAD;
  if (c.flush_interval_ms == 0) c.flush_interval_ms = DEFAULT_FLUSH_MS;
  if (c.lock_ttl_s == 0) c.lock_ttl_s = DEFAULT_LOCK_TTL_S;
  if (c.lock_timeout_ms <= 0) c.lock_timeout_ms = DEFAULT_LOCK_TIMEOUT_MS;
  size_t ra = c.readahead_bytes == (size_t)-1 ? 1 : (c.readahead_bytes + PS - 1) / PS;
  if (ra < 1) ra = 1;
  if (ra > MAX_READAHEAD_PAGES) ra = MAX_READAHEAD_PAGES;
  *out = c;
  *ra_pages = ra;
}

static int parse_routes(const char *text, struct netmem_route **out, char ***hosts, size_t *n) {
  size_t cap = 0;
  const char *p = text;
  while (*p) {
    while (*p && (*p == ',' || *p == ' ' || *p == '\n' || *p == '\t' || *p == '\r')) p++;
    if (*p == '#') {
      while (*p && *p != '\n') p++;
      continue;
    }
    if (!*p) break;
    const char *e = p;
    while (*e && *e != ',' && *e != ' ' && *e != '\n' && *e != '\t' && *e != '\r') e++;
    char spec[400];
    if ((size_t)(e - p) >= sizeof spec) return -EINVAL;
    memcpy(spec, p, (size_t)(e - p));
    spec[e - p] = 0;
    if (*n == cap) {
      cap = cap ? cap * 2 : 8;
      struct netmem_route *r = realloc(*out, cap * sizeof *r);
      char **h = realloc(*hosts, cap * sizeof *h);
      if (r) *out = r;
      if (h) *hosts = h;
      if (!r || !h) return -ENOMEM;
    }
    char *hb = malloc(300);
    if (!hb) return -ENOMEM;
    (*hosts)[*n] = hb;
    int rc = netmem_parse_route(spec, &(*out)[*n], hb, 300);
    (*n)++;
    if (rc) {
      nmm_log("netmem: bad route \"%s\" (want START:SIZE=NODE@HOST:PORT)", spec);
      return rc;
    }
    p = e;
  }
  return 0;
}

static int env_int(const char *name, long long *v) {
  const char *s = getenv(name);
  if (!s || !*s) return 0;
  char *end;
  long long x = strtoll(s, &end, 0);
  if (*end || x < 0) {
    nmm_log("netmem: %s=%s is not a number >= 0", name, s);
    return -EINVAL;
  }
  *v = x;
  return 1;
}

int netmem_map_init_env(void) {
  if (__atomic_load_n(&nmm_g.inited, __ATOMIC_ACQUIRE)) return 0;
  char *text = NULL;
  const char *inline_routes = getenv("NETMEM_ROUTES");
  const char *file = getenv("NETMEM_ROUTES_FILE");
  if (inline_routes && *inline_routes) {
    text = strdup(inline_routes);
  } else if (file && *file) {
    FILE *f = fopen(file, "r");
    if (!f) {
      int e = errno;
      nmm_log("netmem: NETMEM_ROUTES_FILE %s: %s", file, strerror(e));
      return -e;
    }
    size_t cap = 4096, len = 0;
    text = malloc(cap);
    size_t got;
    while (text && (got = fread(text + len, 1, cap - len - 1, f)) > 0) {
      len += got;
      if (cap - len < 2) {
        char *t = realloc(text, cap *= 2);
        if (!t) free(text);
        text = t;
      }
    }
    fclose(f);
    if (text) text[len] = 0;
  } else {
    nmm_log("netmem: no layout: set NETMEM_ROUTES or NETMEM_ROUTES_FILE");
    return -EINVAL;
  }
  if (!text) return -ENOMEM;
  struct netmem_route *routes = NULL;
  char **hosts = NULL;
  size_t n = 0;
  int rc = parse_routes(text, &routes, &hosts, &n);
  free(text);
  struct netmem_map_config c = {0};
  long long v;
  int r;
  if (!rc && (r = env_int("NETMEM_TIMEOUT_MS", &v)) != 0) rc = r < 0 ? r : (c.timeout_ms = (int)v, 0);
  if (!rc && (r = env_int("NETMEM_READAHEAD_KB", &v)) != 0)
    rc = r < 0 ? r : (c.readahead_bytes = v ? (size_t)v * 1024 : (size_t)-1, 0);
  if (!rc && (r = env_int("NETMEM_FLUSH_MS", &v)) != 0)
    rc = r < 0 ? r : (c.flush_interval_ms = v ? (int)v : -1, 0);
  if (!rc && (r = env_int("NETMEM_LOCK_TTL_S", &v)) != 0) rc = r < 0 ? r : (c.lock_ttl_s = (uint32_t)v, 0);
  if (!rc && (r = env_int("NETMEM_LOCK_TIMEOUT_MS", &v)) != 0)
    rc = r < 0 ? r : (c.lock_timeout_ms = (int)v, 0);
  c.tls_cert = getenv("NETMEM_TLS_CERT");
  c.tls_key = getenv("NETMEM_TLS_KEY");
  c.tls_ca = getenv("NETMEM_TLS_CA");
  if (!rc) {
    rc = netmem_map_init(routes, n, &c);
    if (rc == -EALREADY) rc = 0;
  }
  for (size_t i = 0; i < n; i++) free(hosts[i]);
  free(hosts);
  free(routes);
  return rc;
}
