/* devices.c - see devices.h. */
#include "devices.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#define BOUNCE_ALIGN 4096u

void devtable_free(struct devtable *t) {
  if (!t) return;
  for (size_t i = 0; i < t->n; i++) {
    if (t->devs[i].fd >= 0) close(t->devs[i].fd);
    free(t->devs[i].path);
  }
  free(t->devs);
  free(t);
}

struct device *devtable_find(const struct devtable *t, const char *name) {
  if (!t) return NULL;
  for (size_t i = 0; i < t->n; i++)
    if (strcmp(t->devs[i].name, name) == 0) return &t->devs[i];
  return NULL;
}

/* Open path for the device d (name, ro set); 0 or -errno with err filled. */
static int device_open(struct device *d, const char *path, char *err, size_t errlen) {
  int fd = open(path, (d->ro ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    int e = errno;
    snprintf(err, errlen, "cannot open %s: %s", path, strerror(e));
    return -e;
  }
  struct stat st;
  if (fstat(fd, &st) < 0) {
    int e = errno;
    snprintf(err, errlen, "cannot stat %s: %s", path, strerror(e));
    close(fd);
    return -e;
  }
  if (S_ISREG(st.st_mode)) {
    d->kind = DEVICE_REGULAR;
    d->size = (uint64_t)st.st_size;
  } else if (S_ISBLK(st.st_mode)) {
    uint64_t sz = 0;
    if (ioctl(fd, BLKGETSIZE64, &sz) < 0) {
      int e = errno;
      snprintf(err, errlen, "cannot size block device %s: %s", path, strerror(e));
      close(fd);
      return -e;
    }
    d->kind = DEVICE_BLOCK;
    d->size = sz;
  } else if (S_ISCHR(st.st_mode)) {
    d->kind = DEVICE_CHAR;
    d->size = 0;
  } else {
    snprintf(err, errlen, "%s is not a block device, character device or regular file", path);
    close(fd);
    return -EINVAL;
  }
  d->fd = fd;
  int fl = fcntl(fd, F_GETFL);
  d->direct = fl >= 0 && (fl & O_DIRECT) != 0;
  d->path = strdup(path);
  if (!d->path) {
    close(fd);
    d->fd = -1;
    return -ENOMEM;
  }
  return 0;
}

static char *trim(char *s) {
  while (*s && isspace((unsigned char)*s)) s++;
  size_t n = strlen(s);
  while (n > 0 && isspace((unsigned char)s[n - 1])) s[--n] = '\0';
  return s;
}

int devtable_load(const char *file, struct devtable **out, char *err, size_t errlen) {
  *out = NULL;
  FILE *f = fopen(file, "re");
  if (!f) {
    int e = errno;
    snprintf(err, errlen, "cannot read --devices %s: %s", file, strerror(e));
    return -e;
  }
  struct devtable *t = calloc(1, sizeof *t);
  if (!t) {
    fclose(f);
    return -ENOMEM;
  }
  size_t cap = 0;
  char *line = NULL;
  size_t linecap = 0;
  int lineno = 0, rc = 0;
  while (getline(&line, &linecap, f) >= 0) {
    lineno++;
    /* '#' at the start of a line or after whitespace starts a comment */
    for (char *p = line; *p; p++) {
      if (*p == '#' && (p == line || isspace((unsigned char)p[-1]))) {
        *p = '\0';
        break;
      }
    }
    char *s = trim(line);
    if (!*s) continue;
    char *name = s;
    while (*s && !isspace((unsigned char)*s)) s++;
    if (*s) *s++ = '\0';
    s = trim(s);
    char *mode = s;
    while (*s && !isspace((unsigned char)*s)) s++;
    if (*s) *s++ = '\0';
    char *path = trim(s);
    if (!amw_dev_name_valid(name, strlen(name))) {
      snprintf(err, errlen, "%s:%d: device name '%s' must match [a-z0-9][a-z0-9._-]{0,62}",
               file, lineno, name);
      rc = -EINVAL;
      break;
    }
    int ro;
    if (strcmp(mode, "ro") == 0) ro = 1;
    else if (strcmp(mode, "rw") == 0) ro = 0;
    else {
      snprintf(err, errlen, "%s:%d: expected `<name> <ro|rw> <path>`, got mode '%s'", file,
               lineno, mode);
      rc = -EINVAL;
      break;
    }
    if (!*path) {
      snprintf(err, errlen, "%s:%d: device %s has no path", file, lineno, name);
      rc = -EINVAL;
      break;
    }
    if (devtable_find(t, name)) {
      snprintf(err, errlen, "%s:%d: device %s is listed twice", file, lineno, name);
      rc = -EINVAL;
      break;
    }
    if (t->n == cap) {
      size_t ncap = cap ? cap * 2 : 8;
      struct device *p = realloc(t->devs, ncap * sizeof *p);
      if (!p) {
        rc = -ENOMEM;
        break;
      }
      t->devs = p;
      cap = ncap;
    }
    struct device *d = &t->devs[t->n];
    memset(d, 0, sizeof *d);
    d->fd = -1;
    strcpy(d->name, name); /* length checked by amw_dev_name_valid */
    d->ro = ro;
    char why[512];
    int orc = device_open(d, path, why, sizeof why);
    if (orc == -ENOMEM) {
      rc = orc;
      break;
    }
    if (orc < 0) {
      fprintf(stderr, "pageserver: %s:%d: device %s not served: %s\n", file, lineno, name, why);
      continue;
    }
    t->n++;
  }
  free(line);
  fclose(f);
  if (rc < 0) {
    if (rc == -ENOMEM) snprintf(err, errlen, "out of memory reading %s", file);
    devtable_free(t);
    return rc;
  }
  *out = t;
  return 0;
}

uint8_t *devices_bounce_alloc(void) {
  void *p = NULL;
  if (posix_memalign(&p, BOUNCE_ALIGN, AMW_MAX_PAYLOAD) != 0) return NULL;
  return p;
}

/* Size now: a regular file may have grown since the table was loaded. */
static uint64_t device_size(struct device *d) {
  if (d->kind == DEVICE_REGULAR) {
    struct stat st;
    if (fstat(d->fd, &st) == 0) d->size = (uint64_t)st.st_size;
  }
  return d->size;
}

static int in_bounds(struct device *d, uint64_t off, uint64_t len) {
  if (d->kind == DEVICE_CHAR) return 1;
  if (off <= d->size && len <= d->size - off) return 1;
  uint64_t size = device_size(d);
  return off <= size && len <= size - off;
}

/* pread/pwrite the whole span (a character device may not seek: plain read/write). */
static int full_io(struct device *d, int wr, uint8_t *buf, size_t len, uint64_t off,
                   size_t *done) {
  *done = 0;
  while (*done < len) {
    uint8_t *p = buf + *done;
    size_t n_left = len - *done;
    off_t o = (off_t)(off + *done);
    ssize_t n = wr ? pwrite(d->fd, p, n_left, o) : pread(d->fd, p, n_left, o);
    if (n < 0 && errno == ESPIPE && d->kind == DEVICE_CHAR)
      n = wr ? write(d->fd, p, n_left) : read(d->fd, p, n_left);
    if (n < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    if (n == 0) break; /* end of a character device's data (or a file truncated meanwhile) */
    *done += (size_t)n;
  }
  return 0;
}

void devices_execute(const struct devtable *t, uint8_t *bounce, struct memrange *mr,
                     const struct amw_req *req, const uint8_t *payload, uint8_t *out,
                     uint32_t *status, uint32_t *out_len) {
  *status = AMW_OK;
  *out_len = 0;
  char name[AMW_DEV_NAME_SIZE];
  struct device *d = NULL;
  if (amw_dev_name_decode(payload, name) < 0) {
    *status = AMW_E_BAD_REQUEST;
  } else if (!(d = devtable_find(t, name))) {
    *status = AMW_E_NO_DEVICE;
  } else {
    switch (req->opcode) {
    case AMW_OP_DEVICE_READ:
    case AMW_OP_DEVICE_WRITE: {
      int wr = req->opcode == AMW_OP_DEVICE_WRITE;
      if (wr && d->ro) {
        *status = AMW_E_READ_ONLY;
        break;
      }
      if (!in_bounds(d, req->addr, req->length) || req->addr > (uint64_t)INT64_MAX - req->length) {
        *status = AMW_E_OUT_OF_RANGE;
        break;
      }
      /*
       * Buffered I/O goes straight between the connection's buffers and the
       * page cache. An O_DIRECT descriptor needs an aligned buffer: then the
       * data goes through the 4 KiB-aligned bounce buffer.
       */
      uint8_t *data = wr ? (uint8_t *)(uintptr_t)(payload + AMW_DEV_NAME_SIZE) : out;
      if (d->direct) {
        if (wr) memcpy(bounce, data, req->length);
        data = bounce;
      }
      size_t done;
      int rc = full_io(d, wr, data, req->length, req->addr, &done);
      if (rc < 0 || (done < req->length && d->kind != DEVICE_CHAR)) {
        fprintf(stderr, "pageserver: device %s: %s of %u bytes at %llu failed: %s\n", d->name,
                wr ? "write" : "read", req->length, (unsigned long long)req->addr,
                rc < 0 ? strerror(-rc) : "short transfer");
        *status = AMW_E_IO;
        break;
      }
      if (!wr) {
        if (d->direct) memcpy(out, bounce, done);
        *out_len = (uint32_t)done;
        if (mr) mr->stats[AMW_STAT_BYTES_READ] += done;
      } else if (mr) {
        mr->stats[AMW_STAT_BYTES_WRITTEN] += done;
      }
      break;
    }
    case AMW_OP_DEVICE_STAT: {
      struct amw_dev_stat st;
      st.size = htole64(d->kind == DEVICE_CHAR ? 0 : device_size(d));
      st.flags = htole32((d->ro ? AMW_DEVF_RO : 0) | (d->kind == DEVICE_CHAR ? AMW_DEVF_UNSIZED : 0));
      st.block_size = htole32(4096);
      memcpy(out, &st, sizeof st);
      *out_len = sizeof st;
      break;
    }
    case AMW_OP_DEVICE_FSYNC:
      if (!d->ro && d->kind != DEVICE_CHAR && fsync(d->fd) < 0) {
        fprintf(stderr, "pageserver: device %s: fsync failed: %s\n", d->name, strerror(errno));
        *status = AMW_E_IO;
      }
      break;
    default: *status = AMW_E_UNSUPPORTED; break;
    }
  }
  if (*status != AMW_OK && mr) mr->stats[AMW_STAT_ERRORS]++;
}

int devices_read_fd(const struct devtable *t, struct memrange *mr, const struct amw_req *req,
                    const uint8_t *payload) {
  char name[AMW_DEV_NAME_SIZE];
  if (req->opcode != AMW_OP_DEVICE_READ || amw_dev_name_decode(payload, name) < 0) return -1;
  struct device *d = devtable_find(t, name);
  if (!d || d->direct || d->kind == DEVICE_CHAR) return -1;
  if (!in_bounds(d, req->addr, req->length) || req->addr > (uint64_t)INT64_MAX - req->length)
    return -1;
  if (mr) mr->stats[AMW_STAT_BYTES_READ] += req->length;
  return d->fd;
}
