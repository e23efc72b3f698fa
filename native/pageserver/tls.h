/*
 * tls.h - the page server's mutual TLS context (OpenSSL): TLS 1.3 preferred,
 * 1.2 at least; the peer must present a certificate that chains to the
 * cluster CA and names a cluster member (CN `node:<name>` O `amalgam:nodes`,
 * or CN `admin` O `amalgam:admins`: amc_tls_verify_member in
 * native/common/tls_peer.h). Absent when built with AMALGAM_NO_TLS.
 * Functions return 0 or -errno.
 */
#ifndef AMALGAM_TLS_H
#define AMALGAM_TLS_H

#include <stddef.h>

struct ssl_ctx_st; /* SSL_CTX */

#ifndef AMALGAM_NO_TLS
/*
 * Build a server context from PEM files. On failure, err holds one line
 * saying which file and why.
 */
int tls_ctx_create(struct ssl_ctx_st **out, const char *cert_file, const char *key_file,
                   const char *ca_file, char *err, size_t errlen);
void tls_ctx_free(struct ssl_ctx_st *ctx);

struct ssl_st; /* SSL */
/*
 * Who completed the handshake on ssl (the chain and subject were verified):
 * the certificate's CN into cn, its key's identity (`sha256:<hex>` of the
 * SPKI DER, as NodeRecord.identity) into hash, and *admin = 1 for the admin
 * credential (CN admin, O amalgam:admins). 0, or -EACCES with err set.
 */
int tls_peer_identity(struct ssl_st *ssl, char *cn, size_t cnlen, char *hash, size_t hashlen,
                      int *admin, char *err, size_t errlen);
#endif

#endif
