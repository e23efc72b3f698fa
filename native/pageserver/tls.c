/* tls.c - see tls.h. The peer check is native/common/tls_peer.c. */
#include "tls.h"

#ifndef AMALGAM_NO_TLS
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "../common/tls_peer.h"

static int fail(SSL_CTX *ctx, char *err, size_t errlen, const char *what, const char *file) {
  char detail[256];
  amc_tls_last_error(detail, sizeof detail);
  snprintf(err, errlen, "%s %s: %s", what, file ? file : "", detail);
  SSL_CTX_free(ctx);
  return -EINVAL;
}

int tls_ctx_create(SSL_CTX **out, const char *cert_file, const char *key_file,
                   const char *ca_file, char *err, size_t errlen) {
  *out = NULL;
  ERR_clear_error();
  SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
  if (!ctx) return fail(NULL, err, errlen, "cannot create the TLS context", NULL);
  if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1)
    return fail(ctx, err, errlen, "cannot set the minimum TLS version", NULL);
  if (SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1)
    return fail(ctx, err, errlen, "cannot set the maximum TLS version", NULL);
  if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1)
    return fail(ctx, err, errlen, "cannot load --tls-cert", cert_file);
  if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1)
    return fail(ctx, err, errlen, "cannot load --tls-key", key_file);
  if (SSL_CTX_check_private_key(ctx) != 1)
    return fail(ctx, err, errlen, "--tls-key does not match --tls-cert", key_file);
  if (SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1)
    return fail(ctx, err, errlen, "cannot load --tls-ca", ca_file);
  /* Tell clients which CA we accept: the cluster CA only. */
  STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(ca_file);
  if (!names) return fail(ctx, err, errlen, "no certificate in --tls-ca", ca_file);
  SSL_CTX_set_client_CA_list(ctx, names);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, amc_tls_verify_member);
  SSL_CTX_set_verify_depth(ctx, 4);
  /* No resumption: one long-lived connection per peer; nothing to gain, less to get wrong. */
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  if (SSL_CTX_set_num_tickets(ctx, 0) != 1)
    return fail(ctx, err, errlen, "cannot turn off session tickets", NULL);
  long opts = SSL_OP_NO_TICKET | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE;
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
  opts |= SSL_OP_IGNORE_UNEXPECTED_EOF; /* a peer that just closes is end of stream */
#endif
  SSL_CTX_set_options(ctx, opts);
  /* The write buffer may move between a partial SSL_write and its retry. */
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                            SSL_MODE_RELEASE_BUFFERS);
  *out = ctx;
  return 0;
}

void tls_ctx_free(SSL_CTX *ctx) { SSL_CTX_free(ctx); }

int tls_peer_identity(SSL *ssl, char *cn, size_t cnlen, char *hash, size_t hashlen, int *admin,
                      char *err, size_t errlen) {
  *admin = 0;
  X509 *peer = SSL_get1_peer_certificate(ssl);
  if (!peer) {
    snprintf(err, errlen, "no client certificate");
    return -EACCES;
  }
  int rc = amc_tls_peer_cn(ssl, cn, cnlen);
  if (rc == 0) rc = amc_tls_key_hash(peer, hash, hashlen);
  if (rc == 0) {
    char o[128];
    X509_NAME *subject = X509_get_subject_name(peer);
    int idx = subject ? X509_NAME_get_index_by_NID(subject, NID_organizationName, -1) : -1;
    int n = idx >= 0 ? X509_NAME_get_text_by_NID(subject, NID_organizationName, o, sizeof o) : -1;
    *admin = n > 0 && amc_tls_subject_is_member(cn, o) && !amc_tls_subject_is_node(cn, o);
  } else {
    snprintf(err, errlen, "cannot read the client certificate's name or key");
  }
  X509_free(peer);
  return rc == 0 ? 0 : -EACCES;
}

#else
typedef int tls_unavailable; /* ISO C: a translation unit must not be empty */
#endif
