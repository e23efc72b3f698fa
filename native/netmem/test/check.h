/*
 * check.h - the netmem test programs' one assertion: a line `ok NAME` or
 * `FAIL NAME: why` on stdout per check (the integration tests read them),
 * failures counted.
 */
#ifndef NETMEM_TEST_CHECK_H
#define NETMEM_TEST_CHECK_H
#include <stdio.h>

static int failures;

#define CHECK(name, cond, ...)                                                                     \
  do {                                                                                             \
    if (cond) {                                                                                    \
      printf("ok %s\n", name);                                                                     \
    } else {                                                                                       \
      printf("FAIL %s: ", name);                                                                   \
      printf(__VA_ARGS__);                                                                         \
      printf("\n");                                                                                \
      failures++;                                                                                  \
    }                                                                                              \
    fflush(stdout);                                                                                \
  } while (0)

#endif
