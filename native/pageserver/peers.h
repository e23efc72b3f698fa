/*
 * peers.h - who may talk to a page server (--peers FILE): the nodes the
 * control plane lists, each with its key. One per line:
 *
 *   node:<name> sha256:<hex of the SubjectPublicKeyInfo DER>
 *
 *   name  [a-z0-9]([-a-z0-9]{0,61}[a-z0-9])? (a node name)
 *   hex   64 lowercase hex digits (NodeRecord.identity)
 *   '#' starts a comment (at the start of a line or after whitespace); blank
 *   lines are ignored. A name may be listed more than once (one line per key).
 *
 * A TLS client is allowed when its certificate chains to the cluster CA (the
 * handshake checks that) and its (CN, key hash) is listed here; the admin
 * credential (CN admin, O amalgam:admins) stays allowed by the chain alone.
 * No sockets and no OpenSSL here: the server and the unit tests drive it.
 */
#ifndef AMALGAM_PEERS_H
#define AMALGAM_PEERS_H

#include <stddef.h>

#define PEER_CN_MAX 69   /* "node:" + 63 + NUL */
#define PEER_HASH_MAX 72 /* "sha256:" + 64 + NUL */

struct peer {
  char cn[PEER_CN_MAX + 1];
  char hash[PEER_HASH_MAX];
};

struct peertable {
  struct peer *v;
  size_t n;
};

/* Parse text (name is used in messages). 0, or -EINVAL / -ENOMEM with one line in err. */
int peertable_parse(const char *text, const char *name, struct peertable **out, char *err,
                    size_t errlen);
/* Read and parse file. 0 or -errno with one line in err naming the file (and line). */
int peertable_load(const char *file, struct peertable **out, char *err, size_t errlen);
void peertable_free(struct peertable *t);
/* 1 when (cn, hash) is listed. */
int peertable_allows(const struct peertable *t, const char *cn, const char *hash);

#endif
