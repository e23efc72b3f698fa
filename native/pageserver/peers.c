/* peers.c - see peers.h. */
#include "peers.h"

#include "../common/readfile.h"
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/tls_peer.h"

#define MAX_FILE (16u << 20)

void peertable_free(struct peertable *t) {
  if (!t) return;
  free(t->v);
  free(t);
}

int peertable_allows(const struct peertable *t, const char *cn, const char *hash) {
  for (size_t i = 0; t && cn && hash && i < t->n; i++)
    if (strcmp(t->v[i].cn, cn) == 0 && strcmp(t->v[i].hash, hash) == 0) return 1;
  return 0;
}

static int hash_valid(const char *s) {
  if (strncmp(s, "sha256:", 7) != 0 || strlen(s) != 7 + 64) return 0;
  for (const char *p = s + 7; *p; p++)
    if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'))) return 0;
  return 1;
}

/* Split the next whitespace-separated field off *s. */
static char *field(char **s) {
  char *p = *s;
  while (*p && isspace((unsigned char)*p)) p++;
  if (!*p) return NULL;
  char *start = p;
  while (*p && !isspace((unsigned char)*p)) p++;
  if (*p) *p++ = '\0';
  *s = p;
  return start;
}

static void strip_comment(char *line) {
  for (char *p = line; *p; p++) {
    if (*p == '#' && (p == line || isspace((unsigned char)p[-1]))) {
      *p = '\0';
      return;
    }
  }
}

/* One non-blank line into *p: 0 or -EINVAL with err set. */
static int parse_line(char *line, const char *name, int lineno, struct peer *p, char *err,
                      size_t errlen) {
  char *f[3];
  int nf = 0;
  while (nf < 3 && (f[nf] = field(&line))) nf++;
  if (nf != 2) {
    snprintf(err, errlen, "%s:%d: expected `node:<name> sha256:<hex>`", name, lineno);
    return -EINVAL;
  }
  if (strncmp(f[0], "node:", 5) != 0 || !amc_node_name_valid(f[0] + 5)) {
    snprintf(err, errlen, "%s:%d: '%.80s' is not node:<name> with a valid node name", name,
             lineno, f[0]);
    return -EINVAL;
  }
  if (!hash_valid(f[1])) {
    snprintf(err, errlen, "%s:%d: '%.80s' is not sha256:<64 lowercase hex digits>", name,
             lineno, f[1]);
    return -EINVAL;
  }
  strcpy(p->cn, f[0]);
  strcpy(p->hash, f[1]);
  return 0;
}

int peertable_parse(const char *text, const char *name, struct peertable **out, char *err,
                    size_t errlen) {
  *out = NULL;
  struct peertable *t = calloc(1, sizeof *t);
  char *copy = strdup(text);
  if (!t || !copy) {
    free(t);
    free(copy);
    snprintf(err, errlen, "out of memory");
    return -ENOMEM;
  }
  size_t cap = 0;
  int lineno = 0, rc = 0;
  char *next = NULL;
  for (char *line = copy; line && rc == 0; line = next) {
    next = strchr(line, '\n');
    if (next) *next++ = '\0';
    lineno++;
    strip_comment(line);
    char *s = line;
    while (*s && isspace((unsigned char)*s)) s++;
    if (!*s) continue;
    if (t->n == cap) {
      size_t ncap = cap ? cap * 2 : 16;
      struct peer *v = realloc(t->v, ncap * sizeof *v);
      if (!v) {
        snprintf(err, errlen, "out of memory");
        rc = -ENOMEM;
        break;
      }
      t->v = v;
      cap = ncap;
    }
    rc = parse_line(s, name, lineno, &t->v[t->n], err, errlen);
    if (rc == 0) t->n++;
  }
  free(copy);
  if (rc < 0) {
    peertable_free(t);
    return rc;
  }
  *out = t;
  return 0;
}

int peertable_load(const char *file, struct peertable **out, char *err, size_t errlen) {
  *out = NULL;
  char *buf;
  int rc = amc_read_file(file, MAX_FILE, &buf);
  if (rc < 0) {
    snprintf(err, errlen, "cannot read --peers %s: %s", file,
             rc == -EFBIG ? "larger than the limit" : strerror(-rc));
    return rc;
  }
  rc = peertable_parse(buf, file, out, err, errlen);
  free(buf);
  return rc;
}
