/* check.h - the C unit tests' one assertion: report the failed condition, count it, go on. */
#ifndef AMALGAM_TEST_CHECK_H
#define AMALGAM_TEST_CHECK_H
#include <stdio.h>

static int failures;

#define CHECK(cond)                                                                                \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);                     \
      failures++;                                                                                  \
    }                                                                                              \
  } while (0)

#endif
