/* tree.c - see tree.h. */
#include "tree.h"

#include "../common/readfile.h"
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/numparse.h"
#include "../common/tls_peer.h"
#include "../include/amalgam_wire.h"

int tree_machine_name_valid(const char *s) { return amc_node_name_valid(s); }

void tree_free(struct tree *t) {
  if (!t) return;
  free(t->devs);
  free(t);
}

const struct tree_dev *tree_find(const struct tree *t, const char *machine, const char *dev) {
  for (size_t i = 0; t && i < t->n; i++)
    if (strcmp(t->devs[i].machine, machine) == 0 && strcmp(t->devs[i].dev, dev) == 0)
      return &t->devs[i];
  return NULL;
}

int tree_has_machine(const struct tree *t, const char *machine) {
  for (size_t i = 0; t && i < t->n; i++)
    if (strcmp(t->devs[i].machine, machine) == 0) return 1;
  return 0;
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

int tree_parse(const char *text, const char *name, struct tree **out, char *err, size_t errlen) {
  *out = NULL;
  struct tree *t = calloc(1, sizeof *t);
  char *copy = strdup(text);
  if (!t || !copy) {
    free(t);
    free(copy);
    snprintf(err, errlen, "out of memory");
    return -ENOMEM;
  }
  size_t cap = 0;
  int lineno = 0, rc = 0;
  char *save = NULL;
  for (char *line = copy; line; line = save) {
    save = strchr(line, '\n');
    if (save) *save++ = '\0';
    lineno++;
    for (char *p = line; *p; p++) {
      if (*p == '#' && (p == line || isspace((unsigned char)p[-1]))) {
        *p = '\0';
        break;
      }
    }
    char *s = line;
    char *f[7];
    int nf = 0;
    while (nf < 7 && (f[nf] = field(&s))) nf++;
    if (nf == 0) continue;
    if (nf != 6) {
      snprintf(err, errlen,
               "%s:%d: expected `<machine> <dev> <size-bytes> <ro|rw> <host:port> <tls|plain>`",
               name, lineno);
      rc = -EINVAL;
      break;
    }
    struct tree_dev d = {0};
    if (!tree_machine_name_valid(f[0])) {
      snprintf(err, errlen, "%s:%d: machine name '%s' is not a valid node name", name, lineno,
               f[0]);
      rc = -EINVAL;
      break;
    }
    if (!amw_dev_name_valid(f[1], strlen(f[1]))) {
      snprintf(err, errlen, "%s:%d: device name '%s' must match [a-z0-9][a-z0-9._-]{0,62}",
               name, lineno, f[1]);
      rc = -EINVAL;
      break;
    }
    uint64_t size;
    if (amc_parse_u64(f[2], AMC_NUM_DECIMAL, &size) < 0) {
      snprintf(err, errlen, "%s:%d: size '%s' is not a byte count", name, lineno, f[2]);
      rc = -EINVAL;
      break;
    }
    if (strcmp(f[3], "ro") == 0) d.ro = 1;
    else if (strcmp(f[3], "rw") != 0) {
      snprintf(err, errlen, "%s:%d: mode '%s' must be ro or rw", name, lineno, f[3]);
      rc = -EINVAL;
      break;
    }
    if (strcmp(f[5], "tls") == 0) d.tls = 1;
    else if (strcmp(f[5], "plain") != 0) {
      snprintf(err, errlen, "%s:%d: transport '%s' must be tls or plain", name, lineno, f[5]);
      rc = -EINVAL;
      break;
    }
    d.ep = devclient_endpoint(f[4], d.tls, f[0]); /* the machine owns the device */
    if (!d.ep) {
      snprintf(err, errlen, "%s:%d: '%s' is not HOST:PORT", name, lineno, f[4]);
      rc = -EINVAL;
      break;
    }
    strcpy(d.machine, f[0]);
    strcpy(d.dev, f[1]);
    d.size = size;
    if (tree_find(t, d.machine, d.dev)) {
      snprintf(err, errlen, "%s:%d: %s/%s is listed twice", name, lineno, d.machine, d.dev);
      rc = -EINVAL;
      break;
    }
    if (t->n == cap) {
      size_t ncap = cap ? cap * 2 : 16;
      struct tree_dev *p = realloc(t->devs, ncap * sizeof *p);
      if (!p) {
        snprintf(err, errlen, "out of memory");
        rc = -ENOMEM;
        break;
      }
      t->devs = p;
      cap = ncap;
    }
    t->devs[t->n++] = d;
  }
  free(copy);
  if (rc < 0) {
    tree_free(t);
    return rc;
  }
  *out = t;
  return 0;
}

int tree_load(const char *file, struct tree **out, char *err, size_t errlen) {
  *out = NULL;
  char *buf;
  int rc = amc_read_file(file, (size_t)64 << 20, &buf);
  if (rc < 0) {
    snprintf(err, errlen, "cannot read --tree %s: %s", file,
             rc == -EFBIG ? "larger than the limit" : strerror(-rc));
    return rc;
  }
  rc = tree_parse(buf, file, out, err, errlen);
  free(buf);
  return rc;
}
