/*
 * devices.h - the devices a page server exports (the network device space):
 * a table loaded from the --devices file, and the execution of decoded
 * DEVICE_READ / DEVICE_WRITE / DEVICE_STAT / DEVICE_FSYNC requests against it.
 * No sockets here: the server and the unit tests both drive it.
 *
 * File format, one device per line:   <name> <ro|rw> <path>
 *   name  [a-z0-9][a-z0-9._-]{0,62}, unique in the file
 *   path  a block device, a character device, or a regular file (an image);
 *         the rest of the line, so it may hold spaces
 *   '#' starts a comment (at the start of a line or after whitespace);
 *   blank lines are ignored.
 * A `rw` device is opened O_RDWR, a `ro` one O_RDONLY (both O_CLOEXEC). Data
 * moves straight between the connection's buffers and the page cache; on a
 * descriptor with O_DIRECT (not opened so today) it goes through a 4 KiB-aligned
 * bounce buffer instead.
 */
#ifndef AMALGAM_DEVICES_H
#define AMALGAM_DEVICES_H

#include <stddef.h>
#include <stdint.h>

#include "../include/amalgam_wire.h"
#include "memrange.h"

enum device_kind { DEVICE_REGULAR, DEVICE_BLOCK, DEVICE_CHAR };

struct device {
  char name[AMW_DEV_NAME_SIZE];
  int ro;
  int fd;
  enum device_kind kind;
  uint64_t size; /* bytes; 0 for a character device (unsized) */
  int direct;    /* the descriptor has O_DIRECT: I/O through the aligned bounce buffer */
  char *path;
};

struct devtable {
  struct device *devs;
  size_t n;
};

/*
 * Parse file and open every device in it. A syntax error (or a duplicate
 * name) fails the whole load with -EINVAL and one line in err naming the
 * file and line; a device that cannot be opened is left out with a warning on
 * stderr (the others are still served). Returns 0 or -errno.
 */
int devtable_load(const char *file, struct devtable **out, char *err, size_t errlen);
void devtable_free(struct devtable *t);
struct device *devtable_find(const struct devtable *t, const char *name);

/* AMW_MAX_PAYLOAD bytes, 4 KiB-aligned: the buffer device I/O goes through. */
uint8_t *devices_bounce_alloc(void);

/*
 * Execute a decoded device request whose status is AMW_OK (the decoder
 * checked the header). payload holds req->payload_len bytes (the name field,
 * then the data of a DEVICE_WRITE); out must hold max(req->length,
 * sizeof(struct amw_dev_stat)) bytes. t may be NULL (no --devices: every
 * name is E_NO_DEVICE). Errors are counted in mr->stats (may be NULL).
 */
void devices_execute(const struct devtable *t, uint8_t *bounce, struct memrange *mr,
                     const struct amw_req *req, const uint8_t *payload, uint8_t *out,
                     uint32_t *status, uint32_t *out_len);

/*
 * For a zero-copy DEVICE_READ: when req (status AMW_OK from the decoder) is a
 * valid, in-bounds read of a regular file or block device without O_DIRECT,
 * count it and return the descriptor to sendfile from (owned by the table:
 * dup it to keep it past a reload). Otherwise -1: run devices_execute.
 */
int devices_read_fd(const struct devtable *t, struct memrange *mr, const struct amw_req *req,
                    const uint8_t *payload);

#endif
