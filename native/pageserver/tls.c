/* tls.c - see tls.h. */
#include "tls.h"

#ifndef AMALGAM_NO_TLS
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#define NODE_CN_PREFIX "node:"
#define NODE_O "amalgam:nodes"
#define ADMIN_CN "admin"
#define ADMIN_O "amalgam:admins"

void tls_last_error(char *buf, size_t len) {
  unsigned long e = ERR_get_error();
  if (len == 0) return;
  if (e == 0)
    snprintf(buf, len, "no detail from openssl");
  else
    ERR_error_string_n(e, buf, len);
  ERR_clear_error();
}

/* A node name is an RFC 1123 label: [a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?. */
static int valid_node_name(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > 63) return 0;
  for (size_t i = 0; i < n; i++) {
    char ch = s[i];
    int ok = (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || (ch == '-' && i > 0 && i < n - 1);
    if (!ok) return 0;
  }
  return 1;
}

int tls_subject_is_member(const char *cn, const char *o) {
  if (!cn || !o) return 0;
  if (strcmp(o, ADMIN_O) == 0 && strcmp(cn, ADMIN_CN) == 0) return 1;
  if (strcmp(o, NODE_O) == 0 && strncmp(cn, NODE_CN_PREFIX, strlen(NODE_CN_PREFIX)) == 0)
    return valid_node_name(cn + strlen(NODE_CN_PREFIX));
  return 0;
}

/*
 * The single value of attribute nid in name, copied to buf; -ENOENT when it is
 * absent, repeated, or not plain text without NUL bytes.
 */
static int single_entry(X509_NAME *name, int nid, char *buf, size_t len) {
  int idx = X509_NAME_get_index_by_NID(name, nid, -1);
  if (idx < 0 || X509_NAME_get_index_by_NID(name, nid, idx) >= 0) return -ENOENT;
  X509_NAME_ENTRY *ent = X509_NAME_get_entry(name, idx);
  if (!ent) return -ENOENT;
  ASN1_STRING *data = X509_NAME_ENTRY_get_data(ent);
  if (!data) return -ENOENT;
  int n = ASN1_STRING_length(data);
  const unsigned char *p = ASN1_STRING_get0_data(data);
  if (n < 0 || !p || (size_t)n >= len || memchr(p, 0, (size_t)n)) return -ENOENT;
  memcpy(buf, p, (size_t)n);
  buf[n] = '\0';
  return 0;
}

/* Chain verified by openssl; at the leaf, also insist on a member subject. */
int tls_verify_member(int preverify_ok, X509_STORE_CTX *store) {
  if (!preverify_ok) return 0;
  if (X509_STORE_CTX_get_error_depth(store) != 0) return 1;
  X509 *leaf = X509_STORE_CTX_get_current_cert(store);
  X509_NAME *subject = leaf ? X509_get_subject_name(leaf) : NULL;
  char cn[128], o[128];
  if (subject && single_entry(subject, NID_commonName, cn, sizeof cn) == 0 &&
      single_entry(subject, NID_organizationName, o, sizeof o) == 0 &&
      tls_subject_is_member(cn, o))
    return 1;
  X509_STORE_CTX_set_error(store, X509_V_ERR_APPLICATION_VERIFICATION);
  return 0;
}

static int fail(SSL_CTX *ctx, char *err, size_t errlen, const char *what, const char *file) {
  char detail[256];
  tls_last_error(detail, sizeof detail);
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
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, tls_verify_member);
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

#else
typedef int tls_unavailable; /* ISO C: a translation unit must not be empty */
#endif
