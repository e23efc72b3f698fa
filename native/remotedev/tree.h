/*
 * tree.h - the device tree remotedev-fuse shows: one exported remote device
 * per line of the --tree file:
 *
 *   <machine> <dev> <size-bytes> <ro|rw> <host:port> <tls|plain>
 *
 *   machine   [a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?: the node that owns the
 *             device, shown as <mount>/<machine>/<dev>; over tls its page
 *             server must present exactly the certificate of node:<machine>
 *             (devclient_endpoint), else the I/O fails with EIO
 *   dev       [a-z0-9][a-z0-9._-]{0,62} (the name the owner's page server serves)
 *   size      bytes, decimal
 *   host:port the owner's page server ([v6]:port accepted)
 *   '#' starts a comment (at the start of a line or after whitespace); blank
 *   lines are ignored; a (machine, dev) pair may appear once.
 */
#ifndef AMALGAM_REMOTEDEV_TREE_H
#define AMALGAM_REMOTEDEV_TREE_H

#include <stddef.h>
#include <stdint.h>

#include "devclient.h"

struct tree_dev {
  char machine[64];
  char dev[64];
  uint64_t size;
  int ro;
  int tls;
  struct dev_endpoint *ep;
};

struct tree {
  struct tree_dev *devs;
  size_t n;
};

/* Parse file. Returns 0 or -errno with one line in err naming the file and line. */
int tree_load(const char *file, struct tree **out, char *err, size_t errlen);
/* Parse text (the same format; name is used in messages). */
int tree_parse(const char *text, const char *name, struct tree **out, char *err, size_t errlen);
void tree_free(struct tree *t);
const struct tree_dev *tree_find(const struct tree *t, const char *machine, const char *dev);
/* 1 when some device of machine is listed. */
int tree_has_machine(const struct tree *t, const char *machine);
int tree_machine_name_valid(const char *s);

#endif
