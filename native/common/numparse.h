/*
 * numparse.h - numbers and addresses from flags, environment variables and
 * layout specs, checked whole (no trailing junk, no sign, no overflow), for
 * every native part: the page server's flags, netmem's routes and NETMEM_MAP,
 * remotedev's flags and --tree file. Functions return 0 or -EINVAL.
 */
#ifndef AMALGAM_COMMON_NUMPARSE_H
#define AMALGAM_COMMON_NUMPARSE_H

#include <stddef.h>
#include <stdint.h>

/* Hidden: libnetmem-preload.so is injected into programs and exports none of these. */
#pragma GCC visibility push(hidden)

#define AMC_NUM_SUFFIX 1u  /* a K, M or G suffix (binary: 2^10, 2^20, 2^30) is allowed */
#define AMC_NUM_DECIMAL 2u /* base 10 only (otherwise decimal, 0x hex or 0 octal, as strtoull base 0) */

/* An unsigned 64-bit number: the whole of s. A leading '-' or '+' is refused. */
int amc_parse_u64(const char *s, unsigned flags, uint64_t *out);
/* The same for the first n bytes of s (n < 32). */
int amc_parse_u64_n(const char *s, size_t n, unsigned flags, uint64_t *out);
/* A decimal number in [min, max]. */
int amc_parse_range(const char *s, uint64_t min, uint64_t max, uint64_t *out);
/* A TCP port, 1..65535 (decimal or 0x hex). */
int amc_parse_port(const char *s, uint16_t *out);
/*
 * HOST:PORT or [HOST]:PORT (IPv6) split at the last ':' into host (brackets
 * removed) and port, NUL-terminated; both must be non-empty and fit.
 */
int amc_split_host_port(const char *arg, char *host, size_t hostlen, char *port, size_t portlen);

#pragma GCC visibility pop

#endif
