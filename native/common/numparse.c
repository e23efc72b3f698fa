/* numparse.c - see numparse.h. */
#include "numparse.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static uint64_t suffix_multiplier(char c) {
  switch (c) {
  case 'K': case 'k': return 1ull << 10;
  case 'M': case 'm': return 1ull << 20;
  case 'G': case 'g': return 1ull << 30;
  default: return 0;
  }
}

int amc_parse_u64(const char *s, unsigned flags, uint64_t *out) {
  if (!s || !*s || *s == '-' || *s == '+') return -EINVAL;
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, flags & AMC_NUM_DECIMAL ? 10 : 0);
  if (errno || end == s) return -EINVAL;
  uint64_t mul = 1;
  if ((flags & AMC_NUM_SUFFIX) && *end) {
    mul = suffix_multiplier(*end++);
    if (!mul) return -EINVAL;
  }
  if (*end || v > UINT64_MAX / mul) return -EINVAL;
  *out = (uint64_t)v * mul;
  return 0;
}

int amc_parse_u64_n(const char *s, size_t n, unsigned flags, uint64_t *out) {
  char tmp[32];
  if (!s || !n || n >= sizeof tmp) return -EINVAL;
  memcpy(tmp, s, n);
  tmp[n] = 0;
  return amc_parse_u64(tmp, flags, out);
}

int amc_parse_range(const char *s, uint64_t min, uint64_t max, uint64_t *out) {
  uint64_t v;
  if (amc_parse_u64(s, AMC_NUM_DECIMAL, &v) || v < min || v > max) return -EINVAL;
  *out = v;
  return 0;
}

int amc_parse_port(const char *s, uint16_t *out) {
  uint64_t v;
  if (amc_parse_u64(s, 0, &v) || v == 0 || v > 65535) return -EINVAL;
  *out = (uint16_t)v;
  return 0;
}

int amc_split_host_port(const char *arg, char *host, size_t hostlen, char *port, size_t portlen) {
  const char *colon = arg ? strrchr(arg, ':') : NULL;
  if (!colon || colon == arg || !colon[1]) return -EINVAL;
  const char *h = arg;
  size_t n = (size_t)(colon - arg);
  if (h[0] == '[') {
    if (n < 2 || h[n - 1] != ']') return -EINVAL;
    h++;
    n -= 2;
  }
  if (n == 0 || n >= hostlen || strlen(colon + 1) >= portlen) return -EINVAL;
  memcpy(host, h, n);
  host[n] = '\0';
  strcpy(port, colon + 1);
  return 0;
}
