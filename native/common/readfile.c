/* readfile.c - see readfile.h. */
#include "readfile.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

int amc_read_file(const char *file, size_t max, char **out) {
  *out = NULL;
  FILE *f = fopen(file, "re");
  if (!f) return -errno;
  size_t cap = 4096, len = 0, n;
  char *buf = malloc(cap);
  int rc = buf ? 0 : -ENOMEM;
  while (rc == 0 && (n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
    len += n;
    if (len > max) {
      rc = -EFBIG;
    } else if (cap - len - 1 == 0) {
      char *p = realloc(buf, cap * 2);
      if (p) {
        buf = p;
        cap *= 2;
      } else {
        rc = -ENOMEM;
      }
    }
  }
  if (rc == 0 && ferror(f)) rc = -EIO;
  fclose(f);
  if (rc < 0) {
    free(buf);
    return rc;
  }
  buf[len] = '\0';
  *out = buf;
  return 0;
}
